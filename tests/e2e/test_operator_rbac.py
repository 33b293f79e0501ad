"""The operator's permissions, as the real API server answers them, in both chart modes.

Cluster-wide (the session's release): `kubectl auth can-i --list` of the operator's
ServiceAccount is exactly the table below, so a widened verb fails here until the table
(and docs/security.md, "The operator's permissions") says why. Secrets are never listed
or watched anywhere. Namespaced (`watchNamespaces`, a second release while the session's
operator is scaled to zero): the same rules inside the watched namespace, only the
discovery rules outside it, an Agent in the watched namespace is reconciled (its
NetworkPolicy, with callers and extra egress, accepted by the API server as built) and one
outside it is ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agentry_operator import builders
from agentry_operator.kube import contains
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings

from tests.conftest import CHART, RELEASE_NS
from tests.support.agents import apply_agent
from tests.support.e2e import get_json, wait_for
from tests.support.rbac import can_i, can_i_list, parse

pytestmark = pytest.mark.e2e

OPERATOR_SA = f"{RELEASE_NS}:agentry-operator"
SCOPED_RELEASE = "agentry-scoped"
SCOPED_NS = "agentry-scoped-system"
SCOPED_SA = f"{SCOPED_NS}:{SCOPED_RELEASE}-operator"

# What every authenticated identity may do (system:basic-user, system:discovery,
# system:public-info-viewer on v1.35): the floor of every table below.
BASE = """
selfsubjectreviews.authentication.k8s.io        []   []   [create]
selfsubjectaccessreviews.authorization.k8s.io   []   []   [create]
selfsubjectrulesreviews.authorization.k8s.io    []   []   [create]
   [/.well-known/openid-configuration/]   []   [get]
   [/.well-known/openid-configuration]    []   [get]
   [/api/*]   []   [get]
   [/api]     []   [get]
   [/apis/*]  []   [get]
   [/apis]    []   [get]
   [/healthz] []   [get]
   [/healthz] []   [get]
   [/livez]   []   [get]
   [/livez]   []   [get]
   [/openapi/*]   []   [get]
   [/openapi]     []   [get]
   [/openid/v1/jwks/]   []   [get]
   [/openid/v1/jwks]    []   [get]
   [/readyz]  []   [get]
   [/readyz]  []   [get]
   [/version/]   []   [get]
   [/version/]   []   [get]
   [/version]    []   [get]
   [/version]    []   [get]
"""
# charts/agentry/templates/_helpers.tpl, agentry.namespacedRules: what the code calls.
AGENT_RULES = """
agents.agentry.dev                       []   []   [get list watch patch]
agents.agentry.dev/status                []   []   [patch]
agents.agentry.dev/finalizers            []   []   [update]
secrets                                  []   []   [get create patch delete]
serviceaccounts                          []   []   [get list watch create patch]
services                                 []   []   [get list watch create patch]
roles.rbac.authorization.k8s.io          []   []   [get list watch create patch]
rolebindings.rbac.authorization.k8s.io   []   []   [get list watch create patch]
configmaps                               []   []   [get list watch create update patch delete]
persistentvolumeclaims                   []   []   [list patch delete]
statefulsets.apps                        []   []   [get list watch create patch delete]
poddisruptionbudgets.policy              []   []   [get list watch create patch delete]
networkpolicies.networking.k8s.io        []   []   [get list watch create patch delete]
leases.coordination.k8s.io               []   []   [get list watch create update patch delete]
events                                   []   []   [create]
"""
CRDS = "customresourcedefinitions.apiextensions.k8s.io   []   []   [list watch]\n"
NAMESPACES = "namespaces   []   []   [list watch]\n"

EXPECTED_CLUSTER_WIDE = parse(BASE + CRDS + AGENT_RULES)
EXPECTED_WATCHED = parse(BASE + CRDS + NAMESPACES + AGENT_RULES)
EXPECTED_ELSEWHERE = parse(BASE + CRDS + NAMESPACES)


def test_the_cluster_wide_operator_holds_exactly_the_verbs_its_code_calls(
    operator: Any, namespace: str
) -> None:
    assert can_i_list(operator, OPERATOR_SA, namespace) == EXPECTED_CLUSTER_WIDE
    assert can_i_list(operator, OPERATOR_SA, "kube-system") == EXPECTED_CLUSTER_WIDE
    # The finding of issue 12, asked the way it asked it (delete stays: see the chart).
    assert not can_i(operator, OPERATOR_SA, "list", "secrets", "--all-namespaces")
    assert not can_i(operator, OPERATOR_SA, "watch", "secrets", "--all-namespaces")


@pytest.fixture
def scoped_operator(operator: Any, namespace: str) -> Iterator[Any]:
    """A second release watching only `namespace`, while the session's operator (which
    would handle every namespace) is scaled to zero; put back afterwards."""
    deployment = "deployment/agentry-operator"
    operator.kubectl("scale", deployment, "-n", RELEASE_NS, "--replicas=0")
    try:
        wait_for(
            lambda: not get_json(operator, "pods", "-n", RELEASE_NS)["items"],
            90,
            "the cluster-wide operator stopped",
        )
        operator.helm(
            "upgrade", "--install", SCOPED_RELEASE, str(CHART), "--namespace", SCOPED_NS,
            "--create-namespace", "--set", f"watchNamespaces={namespace}",
            "--set", "operator.statusIntervalSeconds=2", "--wait", "--timeout", "180s",
        )  # fmt: skip
        yield operator
    finally:
        operator.helm("uninstall", SCOPED_RELEASE, "--namespace", SCOPED_NS, check=False)
        operator.kubectl("delete", "namespace", SCOPED_NS, "--wait=false", check=False)
        operator.kubectl("scale", deployment, "-n", RELEASE_NS, "--replicas=1")
        operator.kubectl(
            "rollout", "status", deployment, "-n", RELEASE_NS, "--timeout=180s", check=False
        )


def test_a_namespaced_operator_reconciles_its_namespace_and_nothing_else(
    scoped_operator: Any, namespace: str
) -> None:
    cluster = scoped_operator
    outside = f"{namespace}-out"
    cluster.kubectl("create", "namespace", outside)
    try:
        assert can_i_list(cluster, SCOPED_SA, namespace) == EXPECTED_WATCHED
        assert can_i_list(cluster, SCOPED_SA, outside) == EXPECTED_ELSEWHERE
        assert not can_i(cluster, SCOPED_SA, "get", "secrets", "-n", outside)
        assert not can_i(cluster, SCOPED_SA, "get", "secrets", "-n", "kube-system")

        apply_agent(cluster, "ignored", outside, {"replicas": 0})
        network = {
            "ingressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}}}
            ],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 3128}]}],
        }
        spec = {
            "replicas": 0,
            "model": {
                "provider": "openai",
                "endpoint": "http://10.1.2.3:8000/v1",
                "name": "m",
                "apiKeySecretRef": {"name": "llm", "key": "api-key"},
            },
            "network": network,
        }
        apply_agent(cluster, "watched", namespace, spec)

        def reconciled() -> Any:
            body = get_json(cluster, "agents.agentry.dev", "watched", "-n", namespace) or {}
            return body if (body.get("status") or {}).get("phase") else None

        body = wait_for(reconciled, 120, "the watched Agent's status")
        live = get_json(cluster, "networkpolicy", "watched", "-n", namespace)
        desired = builders.build_network_policy(Agent.from_body(body), OperatorSettings())
        assert desired is not None
        assert contains(live["spec"], desired["spec"]), live["spec"]

        ignored = get_json(cluster, "agents.agentry.dev", "ignored", "-n", outside)
        assert not ignored.get("status"), "an Agent outside watchNamespaces was handled"
        assert not ignored["metadata"].get("finalizers")
        assert not get_json(cluster, "serviceaccount", "ignored", "-n", outside)
        cluster.kubectl("delete", "agents.agentry.dev", "watched", "-n", namespace, "--wait=false")
        wait_for(
            lambda: not get_json(cluster, "agents.agentry.dev", "watched", "-n", namespace),
            60,
            "the watched Agent finalized by the namespaced operator",
        )
    finally:
        cluster.kubectl("delete", "namespace", outside, "--wait=false", check=False)

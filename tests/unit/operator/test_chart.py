"""The Helm chart: lint, render every documented value combination, validate the result.

Checks the RBAC of both modes, watchNamespaces as a list or a comma-separated string,
metricsPort 0, the monitoring objects, and that values.schema.json refuses bad values
with a message naming them. Uses the helm binary built by hack/build-binaries.sh;
skipped with a reason until it exists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.chart import CHART, KUBE_VERSION, render, template
from tests.support.chart import helm as _helm

ROOT = Path(__file__).resolve().parents[3]
# Prometheus Operator kinds: kubernetes_validate has no schema for them.
MONITORING = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def test_helm_lint_is_clean() -> None:
    out = subprocess.run(
        [str(_helm()), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_default_values_render_manifests_that_validate() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert "CustomResourceDefinition" in kinds
    assert "Deployment" in kinds
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_crd_in_the_chart_is_the_generated_one() -> None:
    crd = next(d for d in render() if d["kind"] == "CustomResourceDefinition")
    committed = yaml.safe_load((ROOT / "crds" / "agents.agentry.dev.yaml").read_text())
    assert crd == committed


def test_the_operator_runs_once_restricted_with_its_command_and_probes() -> None:
    deployment = next(d for d in render() if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["agentry-operator"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "readyz"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AGENTRY_OPERATOR_READINESS_PORT"] == "8082"
    assert set(container["resources"]["requests"]) == {"cpu", "memory", "ephemeral-storage"}
    assert set(container["resources"]["limits"]) == {"memory", "ephemeral-storage"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_the_cluster_role_never_grants_wildcards_or_escalation() -> None:
    roles = [d for d in render() if d["kind"] in ("ClusterRole", "Role")]
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"]
            assert "*" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def _grants(role: dict[str, Any], resource: str, verb: str) -> bool:
    return any(
        "agentry.dev" in rule["apiGroups"]
        and resource in rule["resources"]
        and verb in rule["verbs"]
        for rule in role["rules"]
    )


@pytest.mark.parametrize("values", [(), ("watchNamespaces={team-a,team-b}",)])
def test_the_operator_may_block_owner_deletion_in_both_modes(values: tuple[str, ...]) -> None:
    """Children carry blockOwnerDeletion: with OwnerReferencesPermissionEnforcement that
    needs update on agents/finalizers wherever the operator writes children."""
    docs = render(*values)
    writers = [
        d for d in docs if d["kind"] in ("ClusterRole", "Role") and _grants(d, "agents", "watch")
    ]
    assert writers
    for role in writers:
        assert _grants(role, "agents/finalizers", "update"), role["metadata"]


def test_watch_namespaces_gives_a_role_per_namespace_and_no_cluster_wide_writes() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_roles = [d for d in docs if d["kind"] == "ClusterRole"]
    for role in cluster_roles:
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
    env = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert {"name": "AGENTRY_OPERATOR_WATCH_NAMESPACES", "value": "team-a,team-b"} in env


def test_monitoring_objects_render_when_enabled() -> None:
    docs = render("serviceMonitor.enabled=true", "prometheusRule.enabled=true")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {"AgentryAgentErrorRateHigh", "AgentryAgentDegraded", "AgentryCheckpointStale"} <= set(
        alerts
    )
    assert any(d["kind"] == "ServiceMonitor" for d in docs)


# ---- every documented value combination (values.yaml) -------------------------------------

COMBINATIONS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "watch a list": ("watchNamespaces={team-a,team-b}",),
    "watch one name": ("watchNamespaces=team-a",),
    "watch a comma-separated string": ("watchNamespaces=team-a\\, team-b",),
    "metrics off": ("operator.metricsPort=0",),
    "monitoring on": (
        "serviceMonitor.enabled=true",
        "podMonitor.enabled=true",
        "prometheusRule.enabled=true",
    ),
    "monitoring in watched namespaces": (
        "watchNamespaces=team-a",
        "podMonitor.enabled=true",
        "prometheusRule.enabled=true",
    ),
    "own images and service account": (
        "image.tag=1.2.3",
        "agentDefaults.image=registry.local/agent:1",
        "serviceAccount.name=ops",
        "logLevel=debug",
    ),
}


@pytest.mark.parametrize("values", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_each_documented_combination_renders_valid_manifests(values: tuple[str, ...]) -> None:
    docs = render(*values)
    for doc in docs:
        if doc["kind"] not in MONITORING:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def _watched(docs: list[dict[str, Any]]) -> tuple[list[str], str]:
    env = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    setting = next(e["value"] for e in env if e["name"] == "AGENTRY_OPERATOR_WATCH_NAMESPACES")
    roles = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role")
    return roles, setting


@pytest.mark.parametrize(
    "value",
    ["watchNamespaces=team-a\\,team-b", "watchNamespaces=team-a\\, team-b ",
     "watchNamespaces={team-a,team-b}"],
)  # fmt: skip
def test_watch_namespaces_may_be_a_list_or_a_comma_separated_string(value: str) -> None:
    """`--set watchNamespaces=team-a` used to fail with "range can't iterate"."""
    assert _watched(render(value)) == (["team-a", "team-b"], "team-a,team-b")


def test_one_watched_namespace_given_as_a_string_gets_its_role() -> None:
    assert _watched(render("watchNamespaces=team-a")) == (["team-a"], "team-a")


def test_metrics_port_zero_renders_no_metrics_service_or_port() -> None:
    docs = render("operator.metricsPort=0")
    assert not [d for d in docs if d["kind"] == "Service"]
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert [p["name"] for p in container["ports"]] == ["healthz", "readyz"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AGENTRY_OPERATOR_METRICS_PORT"] == "0"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("logLevel=verbose", "/logLevel"),
        ("operator.metricsPort=-1", "/operator/metricsPort"),
        ("operator.metricsPort=70000", "/operator/metricsPort"),
        ("watchNamespaces=Team_A", "/watchNamespaces"),
        ("prometheusRule.errorRate=2", "/prometheusRule/errorRate"),
        ("replicas=2", "replicas"),
        ("serviceMonitor.enabled=true,operator.metricsPort=0", "operator.metricsPort"),
        ("operator.apiBurst=0", "/operator/apiBurst"),
        ("operator.maxConverging=0", "/operator/maxConverging"),
        ("flowControl.lendablePercent=150", "/flowControl/lendablePercent"),
    ],
)
def test_bad_values_are_refused_naming_the_value(value: str, named: str) -> None:
    out = template("--set", value)
    assert out.returncode != 0, f"{value}: rendered"
    assert named in out.stderr, out.stderr


def test_the_pod_monitor_labels_agent_series_with_the_agent_name() -> None:
    """The agent alerts group by `agent`: it comes from the pod label agentry.dev/agent."""
    monitor = next(d for d in render("podMonitor.enabled=true") if d["kind"] == "PodMonitor")
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_agentry_dev_agent"],
        "targetLabel": "agent",
        "action": "replace",
    } in endpoint["relabelings"]
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    watched = render("podMonitor.enabled=true", "watchNamespaces=team-a\\,team-b")
    selector = next(d for d in watched if d["kind"] == "PodMonitor")["spec"]["namespaceSelector"]
    assert selector == {"matchNames": ["team-a", "team-b"]}


def test_agent_defaults_env_reaches_the_operator_as_json() -> None:
    docs = render("agentDefaults.env.AGENTRY_HEARTBEAT_INTERVAL_SECONDS=2")
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AGENTRY_OPERATOR_AGENT_ENV"] == '{"AGENTRY_HEARTBEAT_INTERVAL_SECONDS":"2"}'


def test_flow_control_is_off_by_default_and_when_on_classifies_the_operator() -> None:
    assert not [d for d in render() if d["kind"].endswith(("FlowSchema", "Configuration"))]
    docs = render("flowControl.enabled=true")
    level = next(d for d in docs if d["kind"] == "PriorityLevelConfiguration")
    schema = next(d for d in docs if d["kind"] == "FlowSchema")
    assert schema["spec"]["priorityLevelConfiguration"]["name"] == level["metadata"]["name"]
    subject = schema["spec"]["rules"][0]["subjects"][0]["serviceAccount"]
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    assert subject == {"name": account["name"], "namespace": "agentry-system"}
    assert level["spec"]["limited"]["limitResponse"]["type"] == "Queue"
    for doc in (level, schema):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_flow_control_may_use_an_existing_priority_level() -> None:
    docs = render("flowControl.enabled=true", "flowControl.priorityLevel=workload-high")
    assert not [d for d in docs if d["kind"] == "PriorityLevelConfiguration"]
    schema = next(d for d in docs if d["kind"] == "FlowSchema")
    assert schema["spec"]["priorityLevelConfiguration"]["name"] == "workload-high"


def test_the_client_rate_limit_reaches_the_operator() -> None:
    docs = render("operator.apiQPS=50", "operator.apiBurst=80", "operator.maxConverging=8")
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["AGENTRY_OPERATOR_API_QPS"], env["AGENTRY_OPERATOR_API_BURST"]) == ("50", "80")
    assert env["AGENTRY_OPERATOR_MAX_CONVERGING"] == "8"
    assert env["AGENTRY_OPERATOR_DRIFT_INTERVAL_SECONDS"] == "1800"

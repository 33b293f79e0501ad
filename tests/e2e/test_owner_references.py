"""The local API server enforces owner-reference permissions, and the chart's rule is
what it takes (issue 18, item 2).

OwnerReferencesPermissionEnforcement (on in OpenShift and hardened clusters, and in our
local cluster) refuses a child with `blockOwnerDeletion: true` unless its writer may
update the owner's `finalizers` subresource. A ServiceAccount that may write ConfigMaps
is refused such a child of an Agent; given the chart's own `agents/finalizers` rule, it
is allowed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.chart import render
from tests.support.e2e import wait_for

pytestmark = pytest.mark.cluster


def _finalizers_rule() -> dict[str, Any]:
    """The chart's rule (cluster-wide mode) that grants agents/finalizers."""
    role = next(
        d
        for d in render()
        if d["kind"] == "ClusterRole" and "discovery" not in d["metadata"]["name"]
    )
    return next(r for r in role["rules"] if "agents/finalizers" in r["resources"])


def _role(namespace: str, rules: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "writer", "namespace": namespace},
            "rules": rules,
        }
    )


def _child(cluster: Any, namespace: str, name: str, owner: dict[str, Any]) -> Any:
    meta = owner["metadata"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "agentry.dev/v1alpha1",
                    "kind": "Agent",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
    }
    return cluster.kubectl(
        *("create", "-f", "-", f"--as=system:serviceaccount:{namespace}:writer"),
        input=json.dumps(child),
        check=False,
    )


def test_block_owner_deletion_needs_update_on_agents_finalizers(
    crd_installed: Any, namespace: str
) -> None:
    cluster = crd_installed
    agent = {"apiVersion": "agentry.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "own"}}
    created = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", "-o", "json", input=json.dumps(agent)
    )
    owner = json.loads(created.stdout)
    cluster.kubectl("create", "serviceaccount", "writer", "-n", namespace)
    cluster.kubectl(
        *("create", "rolebinding", "writer", "--role=writer", "-n", namespace),
        f"--serviceaccount={namespace}:writer",
    )
    configmaps = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete"]}
    cluster.kubectl("apply", "-f", "-", input=_role(namespace, [configmaps]))

    refused = _child(cluster, namespace, "without-rule", owner)
    assert refused.returncode != 0, "the admission plugin is off"
    assert "blockOwnerDeletion" in refused.stderr, refused.stderr

    cluster.kubectl("apply", "-f", "-", input=_role(namespace, [configmaps, _finalizers_rule()]))
    # RBAC changes reach the authorizer through a watch: allow it a moment.
    wait_for(
        lambda: _child(cluster, namespace, "with-rule", owner).returncode == 0,
        timeout=10,
        what="a child with blockOwnerDeletion, given the chart's agents/finalizers rule",
        interval=0.5,
    )

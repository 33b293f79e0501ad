"""An Agent never takes over objects that merely share its children's names (issue 16.3).

On the local cluster with the chart-installed operator: a namespace already holds a Role
`web`, a RoleBinding `web`, a Service `web` and a Secret `web-keys` that belong to
someone else. Applying an Agent `web` gives Ready=False with reason NameConflict naming
all four, a Warning Event that names them, no pods, and leaves each object exactly as it
was; after the Agent is deleted (garbage collection included) all four still exist,
unchanged and without an owner reference.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.test_agent_lifecycle import AGENTS, agent_pods, agent_status
from tests.support.agents import apply_agent
from tests.support.e2e import get_json, wait_for

pytestmark = pytest.mark.e2e

FOREIGN = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "web", "labels": {"team": "web"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "web", "labels": {"team": "web"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}],
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    },
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web-keys", "labels": {"team": "web"}},
        "stringData": {"password": "not-the-agents"},
    },
]
WATCHED = ("metadata", "rules", "roleRef", "subjects", "spec", "data")
VOLATILE = ("managedFields", "resourceVersion", "generation")


def snapshot(cluster: Any, namespace: str) -> dict[str, Any]:
    """What a takeover would change in each foreign object."""
    out: dict[str, Any] = {}
    for obj in FOREIGN:
        name = obj["metadata"]["name"]
        live = get_json(cluster, obj["kind"].lower(), name, "-n", namespace)
        assert live is not None, f"{obj['kind']}/{name} exists"
        kept = {k: live.get(k) for k in WATCHED}
        kept["metadata"] = {k: v for k, v in live["metadata"].items() if k not in VOLATILE}
        out[f"{obj['kind']}/{name}"] = kept
    return out


def test_an_agent_leaves_foreign_objects_with_its_childrens_names_alone(
    operator: Any, namespace: str
) -> None:
    for obj in FOREIGN:
        operator.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    before = snapshot(operator, namespace)

    apply_agent(operator, "web", namespace, {"state": {"backend": "configmap"}})

    def conflict() -> dict[str, Any] | None:
        conds = agent_status(operator, "web", namespace).get("conditions") or []
        ready = next((c for c in conds if c["type"] == "Ready"), None)
        return ready if ready and ready["reason"] == "NameConflict" else None

    ready = wait_for(conflict, 60, "Ready=False NameConflict")
    assert ready["status"] == "False"
    for name in before:
        assert name in ready["message"]

    def warned() -> str | None:
        events = get_json(operator, "events", "-n", namespace) or {"items": []}
        for event in events["items"]:
            if event["type"] == "Warning" and event["reason"] == "NameConflict":
                return str(event["message"])
        return None

    message = wait_for(warned, 30, "a Warning Event NameConflict")
    assert "Secret/web-keys" in message
    assert "Role/web" in message
    assert agent_pods(operator, "web", namespace) == []
    assert get_json(operator, "statefulset", "web", "-n", namespace) is None
    assert snapshot(operator, namespace) == before

    operator.kubectl("delete", AGENTS, "web", "-n", namespace, "--timeout=60s")
    # The Agent's own ServiceAccount going shows that garbage collection ran: anything it
    # had wrongly owned would be gone too.
    wait_for(
        lambda: get_json(operator, "serviceaccount", "web", "-n", namespace) is None,
        60,
        "the Agent's own ServiceAccount collected",
    )
    assert snapshot(operator, namespace) == before

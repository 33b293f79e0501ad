"""The operator writes only to objects its Agent controls or left behind itself.

Checks, for each child kind that a namespace may already hold under the child's name
(Role, RoleBinding, the client Service, the headless Service `<agent>-pods` that another
Agent named `<agent>-pods` would own, the key Secret `<agent>-keys`): the Agent gets Ready=False
with reason NameConflict naming the object, no StatefulSet runs on it, the object is not
changed, and deleting the Agent leaves it as it was. A Secret that an Agent of the same
name left behind with retainOnDelete is still adopted, but one that merely carries the
retained label without the Agent's is not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

AGENTS = "agentry.dev/v1alpha1/agents"
STS = "apps/v1/statefulsets"
USER_LABELS = {"team": "web", "app.kubernetes.io/managed-by": "helm"}

FOREIGN: dict[str, tuple[str, dict[str, Any]]] = {
    "Role": (
        "rbac.authorization.k8s.io/v1/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    ),
    "RoleBinding": (
        "rbac.authorization.k8s.io/v1/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ns"}],
        },
    ),
    "Service": (
        "v1/services",
        {"apiVersion": "v1", "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    ),
    "Secret": ("v1/secrets", {"apiVersion": "v1", "data": {"tls.key": "c2VjcmV0"}}),
}
FOREIGN["PodsService"] = FOREIGN["Service"]
NAMES = {"Secret": "web-keys", "PodsService": "web-pods"}


def web_agent() -> dict[str, Any]:
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 1},
        "spec": {},
    }


def foreign(kind: str) -> tuple[str, dict[str, Any]]:
    resource, body = FOREIGN[kind]
    name = NAMES.get(kind, "web")
    meta = {"name": name, "namespace": "ns", "labels": dict(USER_LABELS)}
    return resource, {
        **body,
        "kind": "Service" if kind == "PodsService" else kind,
        "metadata": meta,
    }


def ready_condition(api: Any) -> dict[str, Any]:
    status = api.get(AGENTS, "ns", "web")["status"]
    return next(c for c in status["conditions"] if c["type"] == "Ready")


@pytest.mark.parametrize("kind", sorted(FOREIGN))
async def test_a_foreign_object_with_a_child_name_is_a_name_conflict_and_left_alone(
    kind: str, api: Any, operator: None, eventually: Any
) -> None:
    resource, obj = foreign(kind)
    await api.create(resource, obj)
    name = obj["metadata"]["name"]
    before = api.get(resource, "ns", name)

    await api.create(AGENTS, web_agent())
    ready = await eventually(lambda: ready_condition(api)["reason"] == "NameConflict")
    assert ready, api.get(AGENTS, "ns", "web").get("status")
    condition = ready_condition(api)
    assert condition["status"] == "False"
    assert f"{obj['kind']}/{name}" in condition["message"]
    assert api.get(AGENTS, "ns", "web")["status"]["phase"] == "Failed"
    assert api.get(STS, "ns", "web") is None, "no pods run on someone else's objects"
    await asyncio.sleep(0.5)  # a few drift and status ticks
    assert api.get(resource, "ns", name) == before

    await api.delete(AGENTS, "ns", "web")
    assert await eventually(lambda: api.get(AGENTS, "ns", "web") is None)
    assert api.get(resource, "ns", name) == before


async def test_every_conflict_is_named_at_once(api: Any, operator: None, eventually: Any) -> None:
    for kind in FOREIGN:
        await api.create(*foreign(kind))
    await api.create(AGENTS, web_agent())
    assert await eventually(lambda: ready_condition(api)["reason"] == "NameConflict")
    message = ready_condition(api)["message"]
    for expected in (
        "Role/web",
        "RoleBinding/web",
        "Service/web",
        "Service/web-pods",
        "Secret/web-keys",
    ):
        assert expected in message


async def test_a_child_controlled_by_another_agent_is_a_conflict(
    api: Any, operator: None, eventually: Any
) -> None:
    resource, obj = foreign("Service")
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "agentry.dev/v1alpha1",
            "kind": "Agent",
            "name": "web",
            "uid": "uid-of-an-older-web",
            "controller": True,
        }
    ]
    await api.create(resource, obj)
    await api.create(AGENTS, web_agent())
    assert await eventually(lambda: ready_condition(api)["reason"] == "NameConflict")
    assert "Service/web (controlled by Agent/web)" in ready_condition(api)["message"]
    assert api.get(resource, "ns", "web")["spec"]["selector"] == {"app": "web"}


async def test_a_retained_label_alone_does_not_make_a_secret_adoptable(
    api: Any, operator: None, eventually: Any
) -> None:
    resource, obj = foreign("Secret")
    obj["metadata"]["labels"]["agentry.dev/retained"] = "true"  # but no agentry.dev/agent
    await api.create(resource, obj)
    await api.create(AGENTS, web_agent())
    assert await eventually(lambda: ready_condition(api)["reason"] == "NameConflict")
    assert not api.get(resource, "ns", "web-keys")["metadata"].get("ownerReferences")

"""The runtime's identity: a ServiceAccount and a Role limited to its own objects.

The Role names exactly the state ConfigMaps and heartbeat Leases of every ordinal below
`replicas` (docs/architecture.md, "Object names"); `create` cannot be limited by name.
On the postgres backend the memory is in the database, so no ConfigMap is granted.
"""

from __future__ import annotations

from typing import Any

from agentry_operator import constants as c
from agentry_operator.builders.common import metadata
from agentry_operator.models import Agent


def _pods(agent: Agent) -> list[str]:
    # Never an empty list: an empty resourceNames would grant every object.
    return [c.pod_name(agent.name, i) for i in range(max(agent.spec.replicas, 1))]


def build_service_account(agent: Agent) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(agent, agent.name),
        "automountServiceAccountToken": False,
    }


def _named(resource: str, group: str, names: list[str]) -> list[dict[str, Any]]:
    """get/update/patch on the named objects, and create (which names cannot limit)."""
    return [
        {
            "apiGroups": [group],
            "resources": [resource],
            "resourceNames": names,
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": [group], "resources": [resource], "verbs": ["create"]},
    ]


def build_role(agent: Agent) -> dict[str, Any]:
    pods = _pods(agent)
    leases = _named("leases", "coordination.k8s.io", [c.heartbeat_lease_name(p) for p in pods])
    rules = leases
    if agent.spec.state.backend != "postgres":
        state = [name for pod in pods for name in c.state_config_map_names(pod)]
        named, create = _named("configmaps", "", state)
        rules = [named, leases[0], create, leases[1]]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(agent, agent.name),
        "rules": rules,
    }


def build_role_binding(agent: Agent) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(agent, agent.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": agent.name},
        "subjects": [{"kind": "ServiceAccount", "name": agent.name, "namespace": agent.namespace}],
    }

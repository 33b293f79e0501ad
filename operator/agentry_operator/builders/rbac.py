"""The runtime's identity: a ServiceAccount and a Role limited to its own objects.

The Role names exactly the state ConfigMaps and heartbeat Leases of every ordinal below
`replicas` (docs/architecture.md, "Object names"); `create` cannot be limited by name.
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


def build_role(agent: Agent) -> dict[str, Any]:
    pods = _pods(agent)
    state = [name for pod in pods for name in c.state_config_map_names(pod)]
    leases = [c.heartbeat_lease_name(pod) for pod in pods]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(agent, agent.name),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": state,
                "verbs": ["get", "update", "patch"],
            },
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": leases,
                "verbs": ["get", "update", "patch"],
            },
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ],
    }


def build_role_binding(agent: Agent) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(agent, agent.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": agent.name},
        "subjects": [{"kind": "ServiceAccount", "name": agent.name, "namespace": agent.namespace}],
    }

"""Reading an Agent object (agents.agentry.dev/v1alpha1) as the plugin needs it.

The operator writes `status`; users write `spec`. These helpers read both defensively:
an Agent that the operator has not reconciled yet has no status at all.
"""

from __future__ import annotations

import re
from typing import Any

GROUP = "agentry.dev"
VERSION = "v1alpha1"
PLURAL = "agents"
RESOURCE = f"{PLURAL}.{GROUP}"

INSTANCE_LABEL = "app.kubernetes.io/instance"
RESTARTED_AT_ANNOTATION = "agentry.dev/restartedAt"

Obj = dict[str, Any]


def spec(agent: Obj) -> Obj:
    """The Agent's spec, never None."""
    value = agent.get("spec")
    return value if isinstance(value, dict) else {}


def status(agent: Obj) -> Obj:
    """The Agent's status, never None."""
    value = agent.get("status")
    return value if isinstance(value, dict) else {}


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def is_suspended(agent: Obj) -> bool:
    return bool(spec(agent).get("suspend", False))


def backend(agent: Obj) -> str:
    """spec.state.backend, with the CRD's default."""
    return str((spec(agent).get("state") or {}).get("backend") or "pvc")


def desired_replicas(agent: Obj) -> int:
    """How many replicas should run now: zero when suspended; the spec's default is 1."""
    if is_suspended(agent):
        return 0
    replicas = spec(agent).get("replicas", 1)
    return int(replicas) if isinstance(replicas, int) else 1


def pod_names(agent: Obj) -> list[str]:
    """The StatefulSet's pod names for the replicas that should run: `<agent>-<ordinal>`."""
    return [f"{name_of(agent)}-{i}" for i in range(desired_replicas(agent))]


def is_replica_pod(agent_name: str, pod_name: str) -> bool:
    """Whether a pod name is one of this Agent's StatefulSet pods (not another Agent's)."""
    return re.fullmatch(re.escape(agent_name) + r"-\d+", pod_name) is not None


def key_secret_name(agent: Obj) -> str:
    """`spec.state.encryption.keySecretRef` (a name or `{name: ...}`), else `<agent>-keys`."""
    state = spec(agent).get("state") or {}
    ref = (state.get("encryption") or {}).get("keySecretRef")
    if isinstance(ref, dict) and ref.get("name"):
        return str(ref["name"])
    if isinstance(ref, str) and ref:
        return ref
    return f"{name_of(agent)}-keys"


def status_is_current(agent: Obj) -> bool:
    """Whether the operator has seen the latest spec (status.observedGeneration)."""
    generation = agent.get("metadata", {}).get("generation")
    observed = status(agent).get("observedGeneration")
    if generation is None:
        return True
    return isinstance(observed, int) and observed >= int(generation)


def condition(agent: Obj, kind: str) -> Obj | None:
    for item in status(agent).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None

"""Where the agent pods run: spreading of the replicas, node selection, tolerations, affinity.

Called by `build_statefulset` for the pod template. By default the replicas spread over
nodes with `ScheduleAnyway`: the scheduler prefers a node without one of this Agent's
pods but still places a pod when there is none, so a one-node cluster (the local one) or
a cluster with fewer nodes than replicas keeps working. `spec.scheduling` makes it
`DoNotSchedule`, adds zones, or replaces the constraints with the user's own.
"""

from __future__ import annotations

from typing import Any

from agentry_operator import constants as c
from agentry_operator.models import Agent, TopologySpreadConstraint, WhenUnsatisfiable

HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"


def _spread(agent: Agent, key: str, when: WhenUnsatisfiable) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": c.selector_labels(agent.name)},
    }


def _own(agent: Agent, constraint: TopologySpreadConstraint) -> dict[str, Any]:
    """The user's constraint as the pod spec wants it; no labelSelector counts this Agent."""
    out = constraint.model_dump(by_alias=True, exclude_none=True)
    out.setdefault("labelSelector", {"matchLabels": c.selector_labels(agent.name)})
    return out


def spread_constraints(agent: Agent) -> list[dict[str, Any]]:
    """The pod's topologySpreadConstraints: the user's, or nodes (and zones if asked)."""
    scheduling = agent.spec.scheduling
    if scheduling.topology_spread_constraints is not None:
        return [_own(agent, one) for one in scheduling.topology_spread_constraints]
    constraints = [_spread(agent, HOSTNAME_KEY, scheduling.node_spread)]
    if scheduling.zone_spread is not None:
        constraints.append(_spread(agent, ZONE_KEY, scheduling.zone_spread))
    return constraints


def placement(agent: Agent) -> dict[str, Any]:
    """The pod spec fields about placement. One that is not set is null rather than left
    out: the operator's merge patch then removes what an earlier spec had set (a field
    left out would stay on the StatefulSet), and `Kube.create` leaves nulls out of a new object."""
    scheduling = agent.spec.scheduling
    tolerations = [
        t.model_dump(by_alias=True, exclude_none=True) for t in scheduling.tolerations or []
    ]
    return {
        "topologySpreadConstraints": spread_constraints(agent) or None,
        "nodeSelector": dict(scheduling.node_selector or {}) or None,
        "tolerations": tolerations or None,
        "affinity": dict(scheduling.affinity or {}) or None,
    }

"""What sealed state an Agent has, and moving it aside for an accepted fresh start.

Called by `Reconciler.ensure_key_secret` only when the generated key Secret is missing:
then the operator must know whether creating a new key would lock the Agent out of
state sealed with the old one (issue 17). The decisions themselves are the pure
functions of `keyrings`; this module reads the evidence and does the moving.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentry_operator import constants as c
from agentry_operator.keyrings import checkpoint_key_ids, given_ring, needed_key_ids
from agentry_operator.kube import Kube
from agentry_operator.models import Agent
from agentry_operator.ownership import unowned_state_of


@dataclass(frozen=True)
class SealedState:
    """Evidence of state sealed with the Agent's keys, and the ids it needs."""

    evidence: list[str] = field(default_factory=list)
    needed: set[str] = field(default_factory=set)
    config_maps: list[dict[str, Any]] = field(default_factory=list)
    has_pvcs: bool = False


def state_config_map_pattern(agent: str) -> re.Pattern[str]:
    """`<agent>-<n>-state` (commit point) and `<agent>-<n>-state-<a|b><i>` (chunks)."""
    return re.compile(rf"^{re.escape(agent)}-\d+-state(-[ab]\d+)?$")


def is_state_config_map(agent: str, obj: Mapping[str, Any]) -> bool:
    name = str((obj.get("metadata") or {}).get("name", ""))
    return bool(state_config_map_pattern(agent).match(name)) and unowned_state_of(obj, agent)


@dataclass(frozen=True)
class StateObjects:
    """The ConfigMaps and PVCs labelled for an Agent, listed once: what the create handler
    adopts from a deleted namesake and what says a missing key Secret had sealed state."""

    config_maps: list[dict[str, Any]] = field(default_factory=list)
    pvcs: list[dict[str, Any]] = field(default_factory=list)


async def state_objects(kube: Kube, agent: Agent) -> StateObjects:
    """Two LISTs by the Agent's label (state ConfigMaps and PVCs always carry it)."""
    selector = f"{c.AGENT_LABEL}={agent.name}"
    config_maps, pvcs = await asyncio.gather(
        kube.list("ConfigMap", agent.namespace, selector),
        kube.list("PersistentVolumeClaim", agent.namespace, selector),
    )
    return StateObjects(config_maps, pvcs)


async def sealed_state(
    kube: Kube,
    agent: Agent,
    status: Mapping[str, Any] | None,
    statefulset: Mapping[str, Any] | None,
) -> SealedState:
    """Everything that says the Agent has state sealed with keys it no longer has:
    state ConfigMaps, PVCs, a checkpoint in the status, pods that were given keys."""
    return sealed_state_of(agent, status, statefulset, await state_objects(kube, agent))


def sealed_state_of(
    agent: Agent,
    status: Mapping[str, Any] | None,
    statefulset: Mapping[str, Any] | None,
    state: StateObjects,
) -> SealedState:
    """`sealed_state` from objects already listed (no request)."""
    evidence: list[str] = []
    config_maps = [cm for cm in state.config_maps if is_state_config_map(agent.name, cm)]
    pvcs = state.pvcs
    if config_maps:
        evidence.append(f"{len(config_maps)} state ConfigMap(s)")
    if pvcs:
        evidence.append("PVC(s) " + ", ".join(p["metadata"]["name"] for p in pvcs))
    checkpoint = ((status or {}).get("lastCheckpoint") or {}).get("keyId")
    if checkpoint:
        evidence.append(f"status.lastCheckpoint sealed with {checkpoint}")
    given = given_ring(statefulset)
    if given is not None and given.active:
        evidence.append(f"pods running with key {given.active}")
    needed = needed_key_ids(checkpoint_key_ids(status, config_maps), given)
    return SealedState(evidence, needed, config_maps, bool(pvcs))


def aside_name(name: str, stamp: str) -> str:
    """The name a set-aside copy gets; it no longer matches the state name pattern."""
    return f"{name}.set-aside-{stamp}"


def aside_copy(obj: Mapping[str, Any], stamp: str, needed: set[str]) -> dict[str, Any]:
    """A copy of a state ConfigMap under its set-aside name, marked with what it needs."""
    meta = obj.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != c.RETAINED_LABEL}
    copy: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": aside_name(str(meta["name"]), stamp),
            "namespace": meta.get("namespace"),
            "labels": {**labels, c.SET_ASIDE_LABEL: stamp},
            "annotations": {c.NEEDS_KEYS_ANNOTATION: ",".join(sorted(needed))},
        },
    }
    for key in ("data", "binaryData"):
        if obj.get(key):
            copy[key] = obj[key]
    return copy


async def set_aside(kube: Kube, sealed: SealedState, stamp: str) -> list[str]:
    """Move each state ConfigMap to its set-aside name: the copy is created before the
    original is deleted, so the bytes always exist somewhere. Returns the new names."""
    moved: list[str] = []
    for obj in sealed.config_maps:
        meta = obj["metadata"]
        await kube.create(aside_copy(obj, stamp, sealed.needed))
        await kube.delete("ConfigMap", meta["namespace"], meta["name"])
        moved.append(aside_name(meta["name"], stamp))
    return moved

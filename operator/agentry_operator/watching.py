"""Drift learned from watches: which child event means an Agent must converge again.

The operator watches its children (filtered by our labels, on the server) instead of
reading each of them on a timer. For every event it compares the child with what the
Agent's spec builds, without a request: a deletion of a child the Agent should have, or a
child that no longer contains its desired fields, wakes that Agent's guard, which
converges at once. The operator's own writes arrive as events too, and match what was
just built, so they wake nothing.

Secrets are never listed or watched (the operator may read them by name only), so the key
Secret is checked by the slow safety net instead: a GET by name, compared with the ring
the StatefulSet's pods were given. The same tick counts the children the watches have
seen, in case a deletion fell into a gap between two watch streams.

Nothing here touches kopf; watches.py feeds the events in.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from agentry_operator import builders, metrics
from agentry_operator import constants as c
from agentry_operator.keyrings import given_ring, ring_annotations, ring_of
from agentry_operator.kube import IMMUTABLE, contains, without_fields
from agentry_operator.models import Agent
from agentry_operator.ownership import claim
from agentry_operator.seen import AgentKey, ChildKey, Seen
from agentry_operator.settings import OperatorSettings

# Child kinds the operator watches: kind → (group, version, plural). No Secret: see above.
WATCHED: dict[str, tuple[str, str, str]] = {
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "Service": ("", "v1", "services"),
    "ConfigMap": ("", "v1", "configmaps"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
}
# Kinds an Agent has only for some specs: one it no longer wants but still owns is drift.
OPTIONAL = ("PodDisruptionBudget", "NetworkPolicy")
HEARTBEATS = ("coordination.k8s.io", "v1", "leases")
# The server-side filter of every watch: only objects the operator (or, for heartbeat
# Leases, the runtime on its behalf) labelled for an Agent, and not the runtime's state
# ConfigMaps, which carry those labels too but are rewritten at every checkpoint.
SELECTOR = (
    f"app.kubernetes.io/managed-by={c.MANAGED_BY},{c.AGENT_LABEL},"
    f"{c.COMPONENT_LABEL}!={c.MEMORY_COMPONENT}"
)
DIFF_BASE = "last-handled-configuration"  # kopf's copy of the last spec it handled
SHARED_LENGTH = 64  # strings up to this long in a guard's body are shared (interned)
SPREAD = 0.1  # safety-net ticks vary ±10 % so Agents do not tick together
START_CHECK_SECONDS = 5.0  # a new guard counts the children seen this soon
DEFER_SECONDS = 5.0  # drift seen while a spec change is converged is looked at this late


def desired_child(
    agent: Agent, settings: OperatorSettings, kind: str, name: str, live: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """What the Agent's spec builds under (kind, name), or None when it builds nothing.

    The StatefulSet's config hash and key ids are taken from the live object: they depend
    on the key Secret, which no watch sees, and the safety net covers that Secret.
    """
    if kind == "StatefulSet":
        if name != agent.name:
            return None
        template = (((live or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
        digest = (template.get("annotations") or {}).get(c.CONFIG_HASH_ANNOTATION, "")
        ring = given_ring(live)
        notes = ring_annotations(ring) if ring is not None else None
        return builders.build_statefulset(agent, settings, digest, notes)
    return _desired_others(agent, settings).get((kind, name))


def _desired_others(agent: Agent, settings: OperatorSettings) -> dict[ChildKey, dict[str, Any]]:
    built = [
        builders.build_service_account(agent),
        builders.build_role(agent),
        builders.build_role_binding(agent),
        builders.build_config_map(agent),
        builders.build_profile_config_map(agent),
        builders.build_limits_config_map(agent),
        builders.build_pods_service(agent),
        builders.build_service(agent),
        builders.build_pdb(agent),
        builders.build_network_policy(agent, settings),
    ]
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in built if obj is not None}


def desired_names(agent: Agent, settings: OperatorSettings) -> set[ChildKey]:
    """Every watched child the Agent should have."""
    return {*_desired_others(agent, settings), ("StatefulSet", agent.name)}


def drifted(
    agent: Agent,
    settings: OperatorSettings,
    kind: str,
    name: str,
    live: Mapping[str, Any] | None,
) -> bool:
    """True when a converge would change something: the child is gone (`live` None) but
    wanted, is unwanted but still this Agent's (a PDB after a scale-down), or lacks a
    desired field. Fields the API server refuses to change do not count: a converge
    could not put them back either."""
    desired = desired_child(agent, settings, kind, name, live)
    if live is None:
        return desired is not None
    if desired is None:
        mine = claim(live, agent.name, agent.metadata.uid) == "controlled"
        return kind in OPTIONAL and mine
    return not contains(live, without_fields(desired, IMMUTABLE.get(kind, ())))


def key_secret_drifted(
    agent: Agent, secret: Mapping[str, Any] | None, statefulset: Mapping[str, Any] | None
) -> bool:
    """The safety net's check of the key Secret (read by name): gone, no longer this
    Agent's own (the generated one), or holding other key ids than the pods were given.
    Any of these needs the converge's judgement (create, re-adopt, roll or hold)."""
    if secret is None:
        return True
    if builders.key_secret_name_for(agent) == c.keys_secret_name(agent.name):
        labels = (secret.get("metadata") or {}).get("labels") or {}
        owned = claim(secret, agent.name, agent.metadata.uid) == "controlled"
        if not owned or c.RETAINED_LABEL in labels:
            return True
    given = given_ring(statefulset)
    return given is not None and given != ring_of(secret)


def slim_agent(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a guard keeps of an Agent's body: all but managedFields and kopf's copy of the
    last-handled spec, with its keys and short strings shared between Agents. Of about
    34 KB of Python objects per Agent, managedFields are 21 KB; sharing saves 7 of the
    rest (1,000 Agents' bodies repeat the same keys and values)."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    last = f"{c.ANNOTATION_PREFIX}/{DIFF_BASE}"
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k != last}
    slim = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {**meta, "annotations": notes},
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }
    return {key: _shared(value) for key, value in slim.items()}


def _shared(obj: Any) -> Any:
    """A copy of a JSON-like value with dict keys and short strings interned."""
    if isinstance(obj, Mapping):
        return {sys.intern(str(key)): _shared(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_shared(item) for item in obj]
    if isinstance(obj, str) and len(obj) <= SHARED_LENGTH:
        return sys.intern(obj)
    return obj


def jittered(interval: float, rand: Callable[[float, float], float] = random.uniform) -> float:
    """One safety-net interval, spread by ±SPREAD."""
    return interval * rand(1 - SPREAD, 1 + SPREAD)


def next_tick(
    interval: float, *, first: bool, rand: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds to the next safety-net tick: the first at a random point within one
    interval (guards started together by a restart spread out), then ±SPREAD."""
    return rand(0, interval) if first else jittered(interval, rand)


def _nothing() -> None:
    """What waking a guard tells no one (a guard no Guardian runs, as in unit tests)."""


@dataclass
class Guard:
    """One Agent's guard: the live body (kept current from the Agent's events), the
    Agent's kopf memo, the event that wakes it, and when its next round is due."""

    body: Mapping[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    deferred: asyncio.TimerHandle | None = None
    memo: MutableMapping[str, Any] = field(default_factory=dict)
    notify: Callable[[], None] = _nothing  # tells the Guardian that a guard woke
    due: float = 0.0  # clock time of the next round without a wake
    status_due: float | None = None  # clock time of the next status tick; None: not polled
    rounds: int = 0
    retry: bool = False  # the last round failed
    busy: bool = False  # a round is running

    def changing(self) -> bool:
        """A spec change not yet converged (its generation is not the status's): the
        update handler is converging it now, and a child that lags behind the new spec
        is what it is about to write, not drift."""
        meta = self.body.get("metadata") or {}
        status = self.body.get("status") or {}
        return meta.get("generation") != status.get("observedGeneration")

    def wake_now(self) -> None:
        self.wake.set()
        self.notify()

    def wake_later(self, delay: float = DEFER_SECONDS) -> None:
        """Wake once, `delay` from now (after the update handler), whatever came first."""
        if self.deferred is None or self.deferred.cancelled():
            self.deferred = asyncio.get_running_loop().call_later(delay, self._wake_deferred)

    def _wake_deferred(self) -> None:
        self.deferred = None
        self.wake_now()

    def cancel(self) -> None:
        if self.deferred is not None:
            self.deferred.cancel()


@dataclass
class Children:
    """Each Agent's guard, and what the watches have shown of its children."""

    settings: OperatorSettings
    guards: dict[AgentKey, Guard] = field(default_factory=dict)
    seen: Seen = field(default_factory=Seen)

    def guard(self, key: AgentKey, body: Mapping[str, Any]) -> Guard:
        self.guards[key] = guard = Guard(body)
        metrics.GUARDED.set(len(self.guards))
        return guard

    def release(self, key: AgentKey, guard: Guard) -> None:
        guard.cancel()
        if self.guards.get(key) is guard:
            del self.guards[key]
            metrics.GUARDED.set(len(self.guards))

    def event(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Record one watch event; wake the owner's guard when the child drifted.
        Returns whether it woke one."""
        key = self.seen.child(kind, event_type, body)
        if key is None:
            return False
        name = str((body.get("metadata") or {}).get("name"))
        return self.check(key, kind, name, None if event_type == "DELETED" else body)

    def listed(self, kind: str, namespace: str | None, present: set[tuple[str, str]]) -> list[str]:
        """A complete list of `kind` (in `namespace`; None: everywhere): the children it
        did not have are gone, and wake their guards when wanted. Returns them as
        `namespace/name`, those that woke a guard."""
        return [
            f"{key[0]}/{name}"
            for key, name in self.seen.children_gone(kind, namespace, present)
            if self.check(key, kind, name, None)
        ]

    def check(self, key: AgentKey, kind: str, name: str, live: Mapping[str, Any] | None) -> bool:
        """Wake the Agent's guard when its child `name` (`live`, None: gone) drifted."""
        guard = self.guards.get(key)
        if guard is None:
            return False  # not converged yet, refused spec, or being deleted
        try:
            agent = Agent.from_body(guard.body)
        except ValueError:
            return False
        if not drifted(agent, self.settings, kind, name, live):
            return False
        if guard.changing():
            guard.wake_later()
        else:
            guard.wake_now()
        return True

    def unseen(self, agent: Agent) -> set[ChildKey]:
        """Children the Agent should have that no watch event has shown."""
        return desired_names(agent, self.settings) - set(
            self.seen.names((agent.namespace, agent.name))
        )

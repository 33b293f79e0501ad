"""What the watches have shown, by Agent, and nothing more.

Per Agent: the (kind, name) of each watched child that exists, with a slim copy of its
StatefulSet (what the status and the safety net read), and its pods' heartbeats. The
safety net counts the children from here, and the status reads the StatefulSet and the
heartbeats from here instead of one GET each. Whole objects are never kept: an event's
body is compared (watching.py) and dropped.

Nothing here touches kopf or the network; `watches.py` feeds it.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentry_operator import constants as c
from agentry_operator.status import Heartbeat, parse_heartbeat

AgentKey = tuple[str, str]  # (namespace, Agent name)
ChildKey = tuple[str, str]  # (kind, name)
ObjectKey = tuple[str, str]  # (namespace, name)


def owner(body: Mapping[str, Any]) -> AgentKey | None:
    """The Agent a labelled object belongs to, by its namespace and `agentry.dev/agent`."""
    meta = body.get("metadata") or {}
    name = (meta.get("labels") or {}).get(c.AGENT_LABEL)
    return (sys.intern(str(meta.get("namespace"))), str(name)) if name else None


def slim_statefulset(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a StatefulSet that the status and the safety net read: kept instead of
    the whole object (1,000 pod templates add up)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "generation": meta.get("generation")},
        "spec": {
            "replicas": spec.get("replicas"),
            "template": {"metadata": {"annotations": dict(template_meta.get("annotations") or {})}},
        },
        "status": dict(body.get("status") or {}),
    }


@dataclass
class Seen:
    """Children and heartbeats by Agent, as the watches last showed them."""

    # Agent → (kind, name) → the slim StatefulSet for its StatefulSet, None for the rest.
    children: dict[AgentKey, dict[ChildKey, dict[str, Any] | None]] = field(default_factory=dict)
    # Agent → Lease name → the heartbeat in it.
    heartbeats: dict[AgentKey, dict[str, Heartbeat]] = field(default_factory=dict)

    def child(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> AgentKey | None:
        """Record one child's event; the Agent it was recorded for (None: no Agent's). A
        deleted child that no longer names its Agent (it left the watch's selector) is
        found by name among the Agents of its namespace."""
        namespace, name = _key(body)
        agent = owner(body)
        if event_type == "DELETED":
            agent = agent or self._holder(namespace, (kind, name))
            if agent is not None:
                _drop(self.children, agent, (kind, name))
            return agent
        if agent is not None:
            value = slim_statefulset(body) if kind == "StatefulSet" else None
            self.children.setdefault(agent, {})[(sys.intern(kind), name)] = value
        return agent

    def children_gone(
        self, kind: str, namespace: str | None, present: Collection[ObjectKey]
    ) -> list[tuple[AgentKey, str]]:
        """After a complete list of `kind` (in `namespace`, None: everywhere): forget the
        children it did not have, and return them as (Agent, name)."""
        gone = [
            (agent, child_name)
            for agent, known in self.children.items()
            if namespace is None or agent[0] == namespace
            for child_kind, child_name in known
            if child_kind == kind and (agent[0], child_name) not in present
        ]
        for agent, child_name in gone:
            _drop(self.children, agent, (kind, child_name))
        return gone

    def beat(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Record one heartbeat Lease's event (one without a readable heartbeat counts as
        none)."""
        namespace, name = _key(body)
        agent = owner(body)
        beat = None if event_type == "DELETED" else parse_heartbeat(body)
        if beat is not None and agent is not None:
            self.heartbeats.setdefault(agent, {})[name] = beat
            return
        for holder in [agent] if agent is not None else list(self.heartbeats):
            if holder[0] == namespace:
                _drop(self.heartbeats, holder, name)

    def beats_gone(self, namespace: str | None, present: Collection[ObjectKey]) -> None:
        """After a complete list of Leases: forget the ones it did not have."""
        for agent, beats in list(self.heartbeats.items()):
            if namespace is None or agent[0] == namespace:
                for lease in [n for n in beats if (agent[0], n) not in present]:
                    _drop(self.heartbeats, agent, lease)

    def names(self, agent: AgentKey) -> Collection[ChildKey]:
        """The (kind, name) of every child of the Agent the watches have shown."""
        return self.children.get(agent, {}).keys()

    def statefulset(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The slim StatefulSet of Agent `name` (the StatefulSet has the Agent's name)."""
        return self.children.get((namespace, name), {}).get(("StatefulSet", name))

    def beats(self, namespace: str, agent: str) -> list[Heartbeat]:
        return list(self.heartbeats.get((namespace, agent), {}).values())

    def _holder(self, namespace: str, child: ChildKey) -> AgentKey | None:
        return next(
            (
                agent
                for agent, known in self.children.items()
                if agent[0] == namespace and child in known
            ),
            None,
        )


def _key(body: Mapping[str, Any]) -> ObjectKey:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _drop(table: dict[AgentKey, dict[Any, Any]], agent: AgentKey, key: Any) -> None:
    """Remove one entry; an Agent with none left goes too."""
    entries = table.get(agent)
    if entries is not None:
        entries.pop(key, None)
        if not entries:
            del table[agent]

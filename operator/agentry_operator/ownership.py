"""Which existing objects an Agent may write: its own children, or what it left behind.

An Agent's children have fixed names (`<agent>`, `<agent>-keys`, ...), so a namespace can
already hold an object of that name that belongs to someone else. Taking it over would
rewrite it and, through the owner reference, let garbage collection delete it with the
Agent. `Reconciler` asks `claim` before every write to an existing object; `Kube.apply`
calls the guard built here. Pure functions, tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agentry_operator import constants as c

Claim = Literal["controlled", "left-behind", "foreign"]


@dataclass(frozen=True)
class Conflict:
    """An object that has a child's name but is not this Agent's."""

    kind: str
    name: str
    holder: str  # who it belongs to, as far as the object says

    def describe(self) -> str:
        return f"{self.kind}/{self.name} ({self.holder})"


class NameConflict(Exception):
    """Raised by the apply guard: the existing object is not this Agent's to write."""

    def __init__(self, conflict: Conflict) -> None:
        super().__init__(f"{conflict.describe()} is not controlled by this Agent")
        self.conflict = conflict


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with controller: true, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def claim(obj: Mapping[str, Any], agent_name: str, agent_uid: str) -> Claim:
    """How `obj` relates to the Agent `agent_name` with uid `agent_uid`.

    "left-behind" is what the operator's finalizer makes of a retained object: no
    controller, the `agentry.dev/retained=true` label and `agentry.dev/agent=<name>`.
    A same-named object without those marks is foreign, whatever its name says.
    """
    controller = controller_of(obj)
    if controller is not None:
        same = controller.get("kind") == c.KIND and controller.get("uid") == agent_uid
        return "controlled" if same else "foreign"
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(c.RETAINED_LABEL) == "true" and labels.get(c.AGENT_LABEL) == agent_name:
        return "left-behind"
    return "foreign"


def unowned_state_of(obj: Mapping[str, Any], agent_name: str) -> bool:
    """State objects carry the Agent's label but no controller: the runtime (ConfigMaps)
    or the StatefulSet (PVCs) creates them, and the finalizer decides their fate."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return controller_of(obj) is None and labels.get(c.AGENT_LABEL) == agent_name


def holder(obj: Mapping[str, Any]) -> str:
    """A short phrase naming the owner of a foreign object, for messages."""
    controller = controller_of(obj)
    if controller is None:
        return "no Agentry owner"
    return f"controlled by {controller.get('kind', '?')}/{controller.get('name', '?')}"


Guard = Callable[[str, Mapping[str, Any]], None]


def check(kind: str, live: Mapping[str, Any], agent_name: str, agent_uid: str) -> None:
    """Raise NameConflict unless the Agent may write the existing object `live`."""
    if claim(live, agent_name, agent_uid) == "foreign":
        name = str((live.get("metadata") or {}).get("name", ""))
        raise NameConflict(Conflict(kind, name, holder(live)))


def guard_for(agent_name: str, agent_uid: str) -> Guard:
    """The guard `Kube.apply` calls with an existing object before it writes to it."""
    return lambda kind, live: check(kind, live, agent_name, agent_uid)

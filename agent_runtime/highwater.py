"""The high-water mark: how far acknowledged state reached, kept outside the state storage.

Anyone who can write the state volume (or the state ConfigMaps) can delete the newest
checkpoint and journal, or cut the journal at a record boundary: every record left still
authenticates, so recovery alone cannot tell that acknowledged turns are gone. The
heartbeat Lease lives in the API server, out of that reach, so each heartbeat carries
``highWater``: the store's position (newest segment and its record count) and the
fresh-start stamp of the state it describes. ``app.restore`` reads the previous heartbeat
before serving and asks ``rollback`` whether the restored state falls short of it.

An accepted fresh start (``AGENTRY_STATE_SET_ASIDE``) begins a new epoch: a mark from
the state it set aside is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from agent_runtime.state.model import Position

FIELD = "highWater"


@dataclass(frozen=True)
class HighWater:
    """A store position and the fresh-start stamp (``STATE_SET_ASIDE``) it belongs to."""

    position: Position
    epoch: str

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.position.segment,
            "records": self.position.records,
            "epoch": self.epoch,
        }


def from_heartbeat(heartbeat: Mapping[str, Any] | None) -> HighWater | None:
    """The mark an earlier heartbeat carried; None without one (a runtime from before
    the mark existed, a first start) or when it has the wrong shape."""
    mark = (heartbeat or {}).get(FIELD)
    if not isinstance(mark, Mapping):
        return None
    segment, records, epoch = mark.get("segment"), mark.get("records"), mark.get("epoch", "")
    if _count(segment) and _count(records) and isinstance(epoch, str):
        return HighWater(Position(segment, records), epoch)
    return None


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def rollback(restored: Position, mark: HighWater | None, epoch: str) -> str | None:
    """Why the restored state is older than the mark (naming both positions), or None."""
    if mark is None or mark.epoch != epoch or restored >= mark.position:
        return None
    return (
        f"state rolled back: restored up to {restored.describe()}, but the heartbeat Lease "
        f"recorded acknowledged writes up to {mark.position.describe()}; checkpoint or "
        "journal files were removed or truncated outside the runtime"
    )

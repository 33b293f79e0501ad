"""The data the stores persist, and the one rule for applying a journal entry.

The HTTP layer owns the live `MemoryState`; it describes each change as a `JournalEntry`
(durably appended before the request is acknowledged) and hands whole snapshots to
`checkpoint`. `apply_entry` is shared by every store's replay so recovery means the same
thing on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Message = dict[str, str]
MemoryState = dict[str, list[Message]]


@dataclass(frozen=True)
class JournalEntry:
    """One acknowledged change: `append` adds messages to a session, `delete` removes it."""

    op: Literal["append", "delete"]
    session: str
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint was: shown in metrics, the heartbeat and the Agent's status.

    `duration_seconds` is the write time for a checkpoint just written, and the read and
    decrypt time for one restored by `load()` (the original write time is not stored).
    """

    generation: int
    time: datetime
    bytes: int
    key_id: str
    duration_seconds: float


@dataclass
class Restored:
    """The outcome of `load()`: the state, where it came from, and what went wrong on the way."""

    state: MemoryState
    checkpoint: CheckpointInfo | None
    journal_entries_replayed: int
    warnings: list[str] = field(default_factory=list)


def apply_entry(state: MemoryState, entry: JournalEntry) -> None:
    """Apply one journal entry to `state` in place (the replay rule of every store)."""
    if entry.op == "append":
        state.setdefault(entry.session, []).extend(dict(m) for m in entry.messages)
    elif entry.op == "delete":
        state.pop(entry.session, None)
    else:  # pragma: no cover - Literal keeps this out, decoded records are validated
        raise ValueError(f"unknown journal op {entry.op!r}")

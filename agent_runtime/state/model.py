"""The data the stores persist, and the one rule for applying a journal entry.

The HTTP layer owns the live `MemoryState`; it describes each change as a `JournalEntry`
(durably appended before the request is acknowledged) and hands whole snapshots to
`checkpoint`. `apply_entry` is shared by every store's replay so recovery means the same
thing on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

Message = dict[str, str]

ANONYMOUS_CLIENT = "anonymous"
"""The one client every caller is without auth, and the owner of records written before
sessions had owners (state format 1). The tokens file may not use this name."""


class SessionKey(NamedTuple):
    """Who a session belongs to and its id: two clients' ``s1`` are two sessions."""

    client: str
    session: str


MemoryState = dict[SessionKey, list[Message]]


@dataclass(frozen=True)
class JournalEntry:
    """One acknowledged change: `append` adds messages to a session, `delete` removes it.

    `client` is the session's owner; it comes last with a default so that an entry read
    from a format 1 record (before owners existed) belongs to the anonymous client.
    """

    op: Literal["append", "delete"]
    session: str
    messages: tuple[Message, ...] = ()
    client: str = ANONYMOUS_CLIENT

    @property
    def key(self) -> SessionKey:
        return SessionKey(self.client, self.session)


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


class Position(NamedTuple):
    """How far durable state reaches: the newest journal segment (or checkpoint generation,
    one number sequence) and how many records that segment holds.

    Positions compare as tuples, so a restored position below the one last acknowledged
    means acknowledged writes are missing (a deleted file, a truncated journal). A store
    moves its position only after a write is durable, so a clean restart restores exactly
    the position it last reported.
    """

    segment: int
    records: int

    def describe(self) -> str:
        """``segment 7 (3 records)``, or ``no state``, for log lines and readiness."""
        if self.segment < 0:
            return "no state"
        return f"segment {self.segment} ({self.records} records)"


NO_STATE = Position(-1, 0)


@dataclass
class Restored:
    """The outcome of `load()`: the state, where it came from, and what went wrong on the way."""

    state: MemoryState
    checkpoint: CheckpointInfo | None
    journal_entries_replayed: int
    warnings: list[str] = field(default_factory=list)
    # Replayed deletions are erasures the next checkpoint must still complete.
    deletions_replayed: int = 0
    # Where the restored state ends: compared with the high-water mark kept outside it.
    position: Position = NO_STATE
    # Why acknowledged records are known to be missing (a segment's link points past what
    # replay reached), or None: the runtime treats it like a rollback.
    missing: str | None = None


def apply_entry(state: MemoryState, entry: JournalEntry) -> None:
    """Apply one journal entry to `state` in place (the replay rule of every store)."""
    if entry.op == "append":
        state.setdefault(entry.key, []).extend(dict(m) for m in entry.messages)
    elif entry.op == "delete":
        state.pop(entry.key, None)
    else:  # pragma: no cover - Literal keeps this out, decoded records are validated
        raise ValueError(f"unknown journal op {entry.op!r}")

"""The interface the runtime codes against; memory, pvc and configmap stores implement it.

Ordering contract between the caller and `checkpoint`: the `state` given to
`checkpoint()` must already contain every entry whose `append()` was called before
`checkpoint()` was called. Each store starts a new journal segment synchronously when
`checkpoint()` is called (before its first await); entries appended from then on are
replayed on top of the new checkpoint, older ones are covered by it. The simplest way to
honour this is to change the in-memory session first, then `await append(...)`, then
acknowledge the request.
"""

from __future__ import annotations

from typing import Protocol

from agent_runtime.state.model import (
    CheckpointInfo,
    JournalEntry,
    MemoryState,
    Position,
    Restored,
)


class StateStore(Protocol):
    """Encrypted, crash-safe persistence of the agent's sessions."""

    position: Position
    """How far durable writes reach (restored by `load`, moved by durable writes only)."""

    async def load(self) -> Restored:
        """Newest authenticating checkpoint, then journal replay; call once, before writes."""
        ...

    async def append(self, entry: JournalEntry) -> None:
        """Seal and persist one entry; durable when this returns."""
        ...

    async def checkpoint(self, state: MemoryState) -> CheckpointInfo:
        """Write a new generation with the active key, then trim the journal."""
        ...

    async def probe(self) -> str | None:
        """Raise StateError with a short reason when the store cannot serve; else a
        warning when it serves but is close to a limit (or None)."""
        ...

    async def close(self) -> None:
        """Release files or connections; pending appends finish first."""
        ...

    def describe(self) -> str:
        """Where the state lives, e.g. "pvc:/var/lib/agentry/state"."""
        ...

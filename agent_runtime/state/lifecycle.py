"""The write gate every store shares: load first, then write, and never after a refusal.

After `load()` raised StateUnreadable the gate refuses every write with that same error,
so a runtime started with the wrong key cannot overwrite state it could not read, even if
some code path forgets to check readiness first.

It also carries what readiness reports about space: `full` (the last write found no room:
the probe fails with that reason until a write succeeds) and `warning` (close to the
limit: the probe passes and says so).
"""

from __future__ import annotations

from agent_runtime.state.errors import StateError, StateFull, StateUnreadable


class WriteGate:
    """Tracks whether a store may write, and why not."""

    def __init__(self, description: str) -> None:
        self._description = description
        self.loaded = False
        self.closed = False
        self.unreadable: StateUnreadable | None = None
        self.failure: str | None = None
        self.full: str | None = None
        self.warning: str | None = None

    def begin_load(self) -> None:
        """Refuse a second load (a store replays its journal once)."""
        if self.loaded or self.unreadable is not None:
            raise StateError(f"{self._description}: load() already ran")

    def refuse(self, exc: StateUnreadable) -> None:
        """Freeze the store: every later write raises `exc`."""
        self.unreadable = exc

    def check_writable(self) -> None:
        """Raise the reason this store may not write now, if any."""
        if self.unreadable is not None:
            raise StateUnreadable(str(self.unreadable))
        if not self.loaded:
            raise StateError(f"{self._description}: load() must run before writes")
        if self.closed:
            raise StateError(f"{self._description}: store is closed")
        if self.failure is not None:
            raise StateError(f"{self._description}: {self.failure}")

    def out_of_space(self, reason: str) -> StateFull:
        """Remember that a write found no room, for readiness; the error to raise."""
        self.full = reason
        return StateFull(f"{self._description}: {reason}")

    def check_ready(self) -> str | None:
        """What `probe()` reports: writability, then room; a warning when close to full."""
        self.check_writable()
        if self.full is not None:
            raise StateFull(f"{self._description}: {self.full}")
        return self.warning

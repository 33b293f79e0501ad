"""The write gate every store shares: load first, then write, and never after a refusal.

After `load()` raised StateUnreadable the gate refuses every write with that same error,
so a runtime started with the wrong key cannot overwrite state it could not read, even if
some code path forgets to check readiness first.
"""

from __future__ import annotations

from agent_runtime.state.errors import StateError, StateUnreadable


class WriteGate:
    """Tracks whether a store may write, and why not."""

    def __init__(self, description: str) -> None:
        self._description = description
        self.loaded = False
        self.closed = False
        self.unreadable: StateUnreadable | None = None
        self.failure: str | None = None

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

    def check_ready(self) -> None:
        """What `probe()` reports; the same as writability."""
        self.check_writable()

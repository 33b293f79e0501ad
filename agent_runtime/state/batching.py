"""Group commit for journal appends, shared by the durable stores.

An append must be durable before it returns, and a durable write (an fsync, an update of
the commit point) is slow, so appends that arrive while one write is under way wait and
go out together in the next one. The store supplies only "write this batch"; this module
owns the queue, the single flusher task and how the outcome reaches every waiting append.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent_runtime.state.errors import StateError
from agent_runtime.state.model import JournalEntry


@dataclass
class Pending:
    """One append waiting for its batch; a store may renumber `segment` before writing."""

    segment: int
    entry: JournalEntry
    done: asyncio.Future[None]


WriteBatch = Callable[[list[Pending]], Awaitable[None]]


class GroupCommit:
    """Queues appends and writes them in batches, one batch at a time."""

    def __init__(self, description: str, write: WriteBatch) -> None:
        self._description = description
        self._write = write
        self.pending: list[Pending] = []  # arrived since the batch being written
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, segment: int, entry: JournalEntry) -> None:
        """Queue `entry` for `segment` and return once its batch is written."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(Pending(segment, entry, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # No shield needed: a cancelled waiter cancels only its own future, which the
        # flusher skips; the batch it belongs to is written all the same.
        await done

    async def drain(self) -> None:
        """Wait until queued appends are written (or failed); used on close."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher

    async def _flush(self) -> None:
        """Write everything pending in one batch per round until nothing is left."""
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await self._write(batch)
                except Exception as exc:  # reported to every waiting append
                    error = (
                        exc
                        if isinstance(exc, StateError)
                        else StateError(f"{self._description}: journal write failed: {exc}")
                    )
                    for item in batch:
                        if not item.done.done():
                            item.done.set_exception(error)
                else:
                    for item in batch:
                        if not item.done.done():
                            item.done.set_result(None)
        finally:
            self._flusher = None

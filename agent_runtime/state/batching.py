"""Group commit for journal appends, shared by the durable stores.

An append must be durable before it returns, and a durable write (an fsync, an update of
the commit point) is slow, so appends that arrive while one write is under way wait and
go out together in the next one. The store supplies only "write this batch"; this module
owns the queue, the single flusher task and how the outcome reaches every waiting append.

One append's bad input must not fail its neighbours: `seal_each` encodes every entry on
its own, fails only the entries that cannot be encoded, and numbers the rest as if those
had never been queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent_runtime.state.errors import EntryNotWritable, StateError
from agent_runtime.state.model import JournalEntry


@dataclass
class Pending:
    """One append waiting for its batch; a store may renumber `segment` before writing."""

    segment: int
    entry: JournalEntry
    done: asyncio.Future[None]

    def fail(self, error: Exception) -> None:
        """Report `error` to this append alone (unless its waiter already gave up)."""
        if not self.done.done():
            self.done.set_exception(error)


WriteBatch = Callable[[list[Pending]], Awaitable[None]]
SealEntry = Callable[[Pending, int], bytes]


@dataclass(frozen=True)
class Sealed:
    """An entry of a batch that encoded: its append, its index in its segment, its bytes."""

    pending: Pending
    index: int
    record: bytes


def seal_each(batch: list[Pending], stored: Callable[[int], int], seal: SealEntry) -> list[Sealed]:
    """Seal every entry at the next index of its segment; fail only those that cannot be.

    `stored(segment)` is how many records the segment already holds. A `ValueError` from
    `seal` (a lone surrogate cannot be encoded as UTF-8, a record over the frame limit) fails
    that append with `EntryNotWritable` and takes no index, so the batch's other entries are
    numbered and written as usual.
    """
    next_index: dict[int, int] = {}
    sealed: list[Sealed] = []
    for item in batch:
        index = next_index.get(item.segment)
        if index is None:
            index = stored(item.segment)
        try:
            record = seal(item, index)
        except ValueError as exc:
            item.fail(
                EntryNotWritable(f"journal entry cannot be encoded ({exc.__class__.__name__})")
            )
            continue
        next_index[item.segment] = index + 1
        sealed.append(Sealed(item, index, record))
    return sealed


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
                        item.fail(error)
                else:
                    for item in batch:
                        if not item.done.done():
                            item.done.set_result(None)
        finally:
            self._flusher = None

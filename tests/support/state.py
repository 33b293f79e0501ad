"""Checks shared by the tests of every durable state store."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from agent_runtime.state import (
    EntryNotWritable,
    JournalEntry,
    MemoryState,
    Restored,
    StateStore,
    codec,
)
from agent_runtime.state.model import SessionKey
from agent_runtime.state.recovery import CHECKPOINT_KIND
from agent_runtime.state.sealing import BodySeal, SealedStore
from tests.support.runtime import anon


def say(session: str, text: str) -> JournalEntry:
    return JournalEntry("append", session, ({"role": "user", "content": text},))


async def check_an_unencodable_entry_fails_alone(
    store: StateStore, reopen: Callable[[], Awaitable[Restored]]
) -> None:
    """One batch of four appends, one of them a lone surrogate: only that one fails.

    The other three and a later append must be stored in order, and the next process
    must restore them without a warning (no gap in the journal's numbering).
    """
    entries = [say("a", "one"), say("b", "\ud800"), say("a", "two"), say("c", "three")]
    outcomes = await asyncio.gather(*(store.append(e) for e in entries), return_exceptions=True)
    assert isinstance(outcomes[1], EntryNotWritable)
    assert [outcomes[i] for i in (0, 2, 3)] == [None, None, None]
    await store.append(say("a", "after"))
    restored = await reopen()
    assert restored.warnings == []
    assert {k.session: [m["content"] for m in v] for k, v in restored.state.items()} == {
        "a": ["one", "two", "after"],
        "c": ["three"],
    }


@dataclass
class CheckpointWork:
    """What a checkpoint did on which thread: for each session's body, how many turns the
    event loop's other work had taken when it was sealed; for each whole-checkpoint seal,
    whether it ran on the event loop's thread."""

    loop_turns_at_each_body: list[int] = field(default_factory=list)
    bodies_sealed_on_loop: list[bool] = field(default_factory=list)
    whole_sealed_on_loop: list[bool] = field(default_factory=list)


@contextlib.asynccontextmanager
async def watching_checkpoint_work(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[CheckpointWork]:
    """Count the loop's turns while a checkpoint runs (a coroutine that only yields), and
    note where the bodies and the whole checkpoint are sealed."""
    work = CheckpointWork()
    turns = 0
    seal_body = BodySeal.seal
    seal_whole = SealedStore._seal

    def body(self: BodySeal, plaintext: bytes, kind: str, owner: SessionKey) -> bytes:
        work.loop_turns_at_each_body.append(turns)
        work.bodies_sealed_on_loop.append(threading.current_thread() is threading.main_thread())
        return seal_body(self, plaintext, kind, owner)

    def whole(self: SealedStore, plaintext: bytes, kind: str) -> bytes:
        if kind == CHECKPOINT_KIND:
            work.whole_sealed_on_loop.append(threading.current_thread() is threading.main_thread())
        return seal_whole(self, plaintext, kind)

    async def ticking() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(BodySeal, "seal", body)
    monkeypatch.setattr(SealedStore, "_seal", whole)
    ticker = asyncio.create_task(ticking())
    try:
        yield work
    finally:
        ticker.cancel()


def sessions_of(count: int, size: int) -> MemoryState:
    """`count` sessions of one message of about `size` bytes each."""
    return {anon(f"s{i}"): [{"role": "user", "content": "x" * size}] for i in range(count)}


def check_the_loop_ran_between_slices(work: CheckpointWork, sessions: int, size: int) -> None:
    """Bodies were sealed on the loop (no worker thread trading the GIL with it), at most
    a slice's worth of them per turn of other work, and the whole checkpoint was joined and
    sealed off the loop."""
    assert work.bodies_sealed_on_loop == [True] * sessions
    per_slice = -(-codec.SLICE_BYTES // size)
    per_turn = Counter(work.loop_turns_at_each_body)
    assert len(per_turn) >= sessions // per_slice
    assert max(per_turn.values()) <= per_slice
    assert work.whole_sealed_on_loop == [False]

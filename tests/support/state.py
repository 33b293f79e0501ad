"""Checks shared by the tests of every durable state store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest

from agent_runtime.state import (
    EntryNotWritable,
    JournalEntry,
    MemoryState,
    Restored,
    StateStore,
    codec,
)
from agent_runtime.state.sealing import BodySeal


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


def record_encoding_threads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Patch the checkpoint encoder to note whether each call runs on the main thread."""
    threads: list[bool] = []
    encode = codec.encode_checkpoint

    def noting(generation: int, now: datetime, state: MemoryState, bodies: BodySeal) -> bytes:
        threads.append(threading.current_thread() is threading.main_thread())
        return encode(generation, now, state, bodies)

    monkeypatch.setattr(codec, "encode_checkpoint", noting)
    return threads

"""Checks shared by the tests of every durable state store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent_runtime.state import EntryNotWritable, JournalEntry, Restored, StateStore


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

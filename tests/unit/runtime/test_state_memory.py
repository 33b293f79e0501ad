"""The memory store: the same sealing and recovery rules without a disk.

Checks that it round-trips through a simulated restart (shared records), that its
records are sealed, and that a different key makes it refuse like the durable stores.
"""

from __future__ import annotations

import pytest

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.state import JournalEntry, MemoryStore, StateError, StateUnreadable
from agent_runtime.state.memory import MemoryRecords
from tests.support.runtime import anon

BASE = RecordContext("team-a", "support-bot", "support-bot-0", "")
RING = KeyRing({"k1": bytes(range(32))}, "k1")


def say(text: str) -> JournalEntry:
    return JournalEntry("append", "s", ({"role": "user", "content": text},))


async def test_state_survives_a_simulated_restart() -> None:
    records = MemoryRecords()
    first = MemoryStore(RING, BASE, records=records)
    await first.load()
    await first.append(say("one"))
    await first.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    await first.append(say("two"))
    restored = await MemoryStore(RING, BASE, records=records).load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["one", "two"]
    assert restored.journal_entries_replayed == 1
    assert first.describe() == "memory"


async def test_its_records_are_sealed() -> None:
    store = MemoryStore(RING, BASE)
    await store.load()
    await store.append(say("secret words"))
    await store.checkpoint({anon("s"): [{"role": "user", "content": "secret words"}]})
    blobs = [*store.records.checkpoints.values()]
    blobs += [r for seg in store.records.segments.values() for r in seg]
    assert blobs
    assert all(b.startswith(b"AGRY") and b"secret words" not in b for b in blobs)


async def test_a_different_key_is_refused_and_blocks_writes() -> None:
    records = MemoryRecords()
    first = MemoryStore(RING, BASE, records=records)
    await first.load()
    await first.append(say("one"))
    other = MemoryStore(KeyRing({"k2": bytes(32)}, "k2"), BASE, records=records)
    with pytest.raises(StateUnreadable):
        await other.load()
    with pytest.raises(StateUnreadable):
        await other.append(say("two"))


async def test_load_runs_only_once() -> None:
    store = MemoryStore(RING, BASE)
    await store.load()
    with pytest.raises(StateError, match="already"):
        await store.load()

"""The pvc store: durability, recovery, encryption on disk and refusing to touch bad state.

Checks that acknowledged appends survive a restart and a real `kill -9`, that checkpoints
keep N generations and trim the journal, that a torn journal tail and a corrupt newest
checkpoint are recovered with warnings (the corrupt file kept, never overwritten), that a
wrong or missing key leaves every byte in the directory unchanged and blocks all writes,
that rotation lets the old key go after one checkpoint, and that no message text reaches
the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.state import (
    JournalEntry,
    MemoryState,
    PvcStore,
    StateError,
    StateUnreadable,
)
from agent_runtime.state.pvc import FLUSH_CHUNK_BYTES
from tests.support.runtime import anon
from tests.support.state import check_an_unencodable_entry_fails_alone

BASE = RecordContext("team-a", "support-bot", "support-bot-0", "")
KEY1 = bytes(range(32))
KEY2 = bytes(range(32, 64))


def ring(**keys: bytes) -> KeyRing:
    active = next(reversed(keys))
    return KeyRing(keys, active)


def say(session: str, text: str) -> JournalEntry:
    return JournalEntry("append", session, ({"role": "user", "content": text},))


def names_in(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def newest_journal(path: Path) -> Path:
    return max(path.glob("journal-*.agry"))


def every_file_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.rglob("*") if p.is_file()}


def directory_hashes(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


async def open_store(path: Path, keyring: KeyRing | None = None, **kw: int) -> PvcStore:
    store = PvcStore(path, keyring or ring(k1=KEY1), BASE, **kw)
    await store.load()
    return store


async def test_a_fresh_directory_loads_as_empty_state(tmp_path: Path) -> None:
    store = PvcStore(tmp_path / "state", ring(k1=KEY1), BASE)
    restored = await store.load()
    assert restored.state == {}
    assert restored.checkpoint is None
    assert restored.warnings == []
    assert store.describe() == f"pvc:{tmp_path / 'state'}"
    await store.probe()


async def test_acknowledged_appends_are_restored_by_the_next_process(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.append(say("s1", "hello"))
    await store.append(say("s2", "hi"))
    await store.append(JournalEntry("delete", "s2"))
    # No close(): the process just stops.
    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert restored.state == {anon("s1"): [{"role": "user", "content": "hello"}]}
    assert restored.journal_entries_replayed == 3


async def test_a_checkpoint_plus_later_appends_restore_the_whole_state(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.append(say("s1", "one"))
    state: MemoryState = {anon("s1"): [{"role": "user", "content": "one"}]}
    info = await store.checkpoint(state)
    await store.append(say("s1", "two"))
    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in restored.state[anon("s1")]] == ["one", "two"]
    assert restored.journal_entries_replayed == 1
    assert restored.checkpoint is not None
    assert restored.checkpoint.generation == info.generation
    assert restored.checkpoint.key_id == "k1"
    assert restored.checkpoint.bytes == info.bytes > 0


async def test_only_the_newest_generations_are_kept_with_the_journal_they_need(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path, generations=3)
    state: MemoryState = {}
    for turn in range(6):
        await store.append(say("s", f"turn {turn}"))
        state.setdefault(anon("s"), []).append({"role": "user", "content": f"turn {turn}"})
        await store.checkpoint(state)
    names = names_in(tmp_path)
    checkpoints = [n for n in names if n.startswith("checkpoint-")]
    journals = [n for n in names if n.startswith("journal-")]
    assert len(checkpoints) == 3
    oldest_kept = min(int(n[len("checkpoint-") : -len(".agry")]) for n in checkpoints)
    assert all(int(n[len("journal-") : -len(".agry")]) >= oldest_kept for n in journals)
    assert not [n for n in names if n.endswith(".tmp")]


async def test_a_torn_last_journal_record_is_ignored_with_a_warning(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.append(say("s", "kept"))
    await store.append(say("s", "torn"))
    journal = newest_journal(tmp_path)
    journal.write_bytes(journal.read_bytes()[:-7])  # killed halfway through the last write
    store2 = PvcStore(tmp_path, ring(k1=KEY1), BASE)
    restored = await store2.load()
    assert restored.state == {anon("s"): [{"role": "user", "content": "kept"}]}
    assert any("torn record" in w for w in restored.warnings)
    await store2.append(say("s", "after"))
    again = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in again.state[anon("s")]] == ["kept", "after"]
    assert again.warnings == []


async def test_a_corrupt_newest_checkpoint_falls_back_and_is_kept_untouched(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path)
    await store.append(say("s", "one"))
    await store.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    await store.append(say("s", "two"))
    newest = await store.checkpoint(
        {anon("s"): [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]}
    )
    await store.append(say("s", "three"))
    path = tmp_path / f"checkpoint-{newest.generation:08d}.agry"
    damaged = bytearray(path.read_bytes())
    damaged[-3] ^= 0xFF
    path.write_bytes(bytes(damaged))

    store2 = PvcStore(tmp_path, ring(k1=KEY1), BASE)
    restored = await store2.load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["one", "two", "three"]
    assert restored.checkpoint is not None
    assert restored.checkpoint.generation < newest.generation
    assert any(
        f"checkpoint-{newest.generation:08d}" in w
        and f"restored generation {restored.checkpoint.generation}" in w
        for w in restored.warnings
    )
    quarantined = tmp_path / f"checkpoint-{newest.generation:08d}.agry.corrupt"
    assert quarantined.read_bytes() == bytes(damaged)

    for _ in range(4):  # more checkpoints than generations: the corrupt file stays
        info = await store2.checkpoint(restored.state)
        assert info.generation > newest.generation
    assert quarantined.read_bytes() == bytes(damaged)


async def test_a_checkpoint_renamed_to_a_newer_generation_is_not_trusted(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    old = await store.checkpoint({anon("s"): [{"role": "user", "content": "old"}]})
    await store.checkpoint({anon("s"): [{"role": "user", "content": "new"}]})
    src = tmp_path / f"checkpoint-{old.generation:08d}.agry"
    (tmp_path / "checkpoint-00000099.agry").write_bytes(src.read_bytes())
    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert restored.state[anon("s")][0]["content"] == "new"
    assert any("checkpoint-00000099" in w for w in restored.warnings)


@pytest.mark.parametrize(
    "other_ring",
    [
        pytest.param(KeyRing({"k9": KEY2}, "k9"), id="missing-key"),
        pytest.param(KeyRing({"k1": KEY2}, "k1"), id="wrong-key-same-id"),
    ],
)
async def test_state_under_a_wrong_or_missing_key_is_refused_and_left_byte_for_byte(
    tmp_path: Path, other_ring: KeyRing
) -> None:
    store = await open_store(tmp_path)
    await store.append(say("s", "one"))
    await store.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    await store.append(say("s", "two"))
    journal = newest_journal(tmp_path)
    journal.write_bytes(journal.read_bytes() + b"\x00\x00")  # a torn tail it must not cut
    before = directory_hashes(tmp_path)

    refused = PvcStore(tmp_path, other_ring, BASE)
    with pytest.raises(StateUnreadable) as caught:
        await refused.load()
    # The reason (which the heartbeat's state health carries) names the key id the
    # state needs and the ids the ring has (issue 17).
    assert re.search(r"(needs|sealed with) key id 'k1'", str(caught.value))
    assert str(list(other_ring.key_ids)) in str(caught.value)
    with pytest.raises(StateUnreadable):
        await refused.append(say("s", "three"))
    with pytest.raises(StateUnreadable):
        await refused.checkpoint({})
    with pytest.raises(StateUnreadable):
        await refused.probe()
    await refused.close()
    assert directory_hashes(tmp_path) == before


async def test_no_message_text_reaches_any_file(tmp_path: Path) -> None:
    secret = "the launch code is TANGERINE-4417"
    store = await open_store(tmp_path)
    user = {"role": "user", "content": secret}
    await store.append(JournalEntry("append", "session-XYZZY", (user,)))
    await store.checkpoint({anon("session-XYZZY"): [user]})
    await store.append(JournalEntry("append", "session-XYZZY", ({**user, "role": "assistant"},)))
    files = every_file_bytes(tmp_path)
    assert len(files) == 2  # a checkpoint and the journal after it
    for name, data in files.items():
        for needle in (secret, "TANGERINE", "XYZZY", "launch code", '"role"'):
            assert needle.encode() not in data, f"{needle!r} in {name}"
            assert needle.encode("utf-16-le") not in data


async def test_after_rotation_one_checkpoint_lets_the_old_key_go(tmp_path: Path) -> None:
    store = await open_store(tmp_path, ring(k1=KEY1))
    await store.append(say("s", "under k1"))
    await store.checkpoint({anon("s"): [{"role": "user", "content": "under k1"}]})
    await store.append(say("s", "still k1"))

    rotated = PvcStore(tmp_path, ring(k1=KEY1, k2=KEY2), BASE)
    restored = await rotated.load()
    info = await rotated.checkpoint(restored.state)
    assert info.key_id == "k2"
    await rotated.append(say("s", "under k2"))

    k2_only = await PvcStore(tmp_path, ring(k2=KEY2), BASE).load()
    assert [m["content"] for m in k2_only.state[anon("s")]] == ["under k1", "still k1", "under k2"]


async def test_concurrent_appends_share_fsyncs_and_all_survive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(tmp_path)
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    await asyncio.gather(*(store.append(say(f"s{i % 5}", f"m{i}")) for i in range(100)))
    assert fsyncs < 100
    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert sum(len(v) for v in restored.state.values()) == 100


async def test_a_checkpoint_of_megabytes_reaches_the_disk_a_mebibyte_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a journal fsync waits behind one flushed mebibyte, not the whole checkpoint."""
    store = await open_store(tmp_path)
    flushed: list[int] = []
    real_fdatasync = os.fdatasync

    def noting_fdatasync(fd: int) -> None:
        flushed.append(os.fstat(fd).st_size)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", noting_fdatasync)
    state = {
        anon(f"s{i}"): [{"role": "user", "content": os.urandom(300_000).hex()}] for i in range(6)
    }
    info = await store.checkpoint(state)
    assert info.bytes > 3 * FLUSH_CHUNK_BYTES
    chunks = -(-info.bytes // FLUSH_CHUNK_BYTES)
    assert flushed == [min((n + 1) * FLUSH_CHUNK_BYTES, info.bytes) for n in range(chunks)]
    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert restored.state == state


async def test_an_entry_that_cannot_be_encoded_fails_alone_and_its_batch_is_written(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path)
    await check_an_unencodable_entry_fails_alone(
        store, PvcStore(tmp_path, ring(k1=KEY1), BASE).load
    )


async def test_appends_during_a_checkpoint_are_not_lost(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    state: MemoryState = {anon("s"): [{"role": "user", "content": "before"}]}
    await store.append(say("s", "before"))
    checkpointing = asyncio.create_task(store.checkpoint(dict(state)))
    await asyncio.sleep(0)  # the checkpoint has started; the next append comes after it
    await store.append(say("s", "during"))
    await checkpointing
    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["before", "during"]


async def test_writes_before_load_are_refused(tmp_path: Path) -> None:
    store = PvcStore(tmp_path, ring(k1=KEY1), BASE)
    with pytest.raises(StateError, match="load"):
        await store.append(say("s", "x"))
    with pytest.raises(StateError, match="load"):
        await store.probe()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from agent_runtime.crypto import KeyRing, RecordContext
    from agent_runtime.state import JournalEntry, PvcStore
    from tests.support.runtime import anon

    async def main() -> None:
        ring = KeyRing({"k1": bytes(range(32))}, "k1")
        store = PvcStore(Path(sys.argv[1]), ring, RecordContext("team-a", "support-bot",
                         "support-bot-0", ""))
        await store.load()
        turn = 0
        while True:
            await store.append(JournalEntry("append", "s", ({"role": "user",
                               "content": f"m{turn}"},)))
            print(turn, flush=True)  # acknowledged
            turn += 1
            if turn % 50 == 0:
                await store.checkpoint({anon("s"): [{"role": "user", "content": f"m{i}"}
                                              for i in range(turn)]})

    asyncio.run(main())
    """
)


async def test_every_acknowledged_append_survives_kill_9(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    acknowledged = -1
    while acknowledged < 120:
        acknowledged = int(await proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    rest, _ = await proc.communicate()  # acknowledgements printed before the kill landed
    for line in rest.split():
        acknowledged = int(line)
    assert proc.returncode == -signal.SIGKILL

    restored = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    contents = [m["content"] for m in restored.state[anon("s")]]
    assert contents[: acknowledged + 1] == [f"m{i}" for i in range(acknowledged + 1)]


def flip_byte_of_record(journal: Path, record: int) -> None:
    """Damage the ciphertext of the given record (0-based) in a journal file."""
    data = bytearray(journal.read_bytes())
    offset = 0
    for _ in range(record):
        offset += 4 + int.from_bytes(data[offset : offset + 4], "big")
    length = int.from_bytes(data[offset : offset + 4], "big")
    data[offset + 4 + length - 1] ^= 0xFF
    journal.write_bytes(bytes(data))


async def test_a_corrupt_journal_record_stops_replay_and_is_set_aside(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    for text in ("one", "two", "three"):
        await store.append(say("s", text))
    journal = newest_journal(tmp_path)
    flip_byte_of_record(journal, 1)
    damaged = journal.read_bytes()

    store2 = PvcStore(tmp_path, ring(k1=KEY1), BASE)
    restored = await store2.load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["one"]
    assert any("replay stopped" in w for w in restored.warnings)
    assert (tmp_path / (journal.name + ".corrupt")).read_bytes() == damaged
    await store2.append(say("s", "four"))
    again = await PvcStore(tmp_path, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in again.state[anon("s")]] == ["one", "four"]
    assert again.warnings == []

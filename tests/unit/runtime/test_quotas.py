"""Memory has a bound (issue 16, item 6): limits on turns, session bytes, sessions and the
replica's total, an idle TTL, and a restore that reads only the checkpoint it restores.

Checks: each limit refuses with its status and a message naming the setting, and leaves
the stored history whole; limits count restored sessions too; idle sessions expire and
the checkpoint of the same tick erases them; restore reads the newest checkpoint that
opens and no older one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.services import SERVICES
from agent_runtime.state import MemoryStore, PvcStore
from agent_runtime.state.memory import MemoryRecords
from tests.support.runtime import MakeClient, anon

BASE = RecordContext("team-a", "demo", "demo-0", "")


async def say(client: TestClient[Any, Any], session: str, content: str) -> tuple[int, Any]:
    response = await client.post(f"/v1/sessions/{session}/messages", json={"content": content})
    return response.status, await response.json()


async def turns_of(client: TestClient[Any, Any], session: str) -> int:
    body = await (await client.get(f"/v1/sessions/{session}")).json()
    return sum(1 for m in body["messages"] if m["role"] == "user")


async def test_a_session_at_max_turns_refuses_more_with_409_and_keeps_its_history(
    make_client: MakeClient,
) -> None:
    client = await make_client(overrides={"max_turns": 2})
    for _ in range(2):
        assert (await say(client, "s", "hi"))[0] == 200
    status, body = await say(client, "s", "one more")
    assert status == 409
    assert body["error"]["code"] == "session_turn_limit"
    assert "AGENTRY_MAX_TURNS=2" in body["error"]["message"]
    assert await turns_of(client, "s") == 2
    assert (await say(client, "other", "hi"))[0] == 200


async def test_a_question_past_max_session_bytes_is_413_and_changes_nothing(
    make_client: MakeClient,
) -> None:
    client = await make_client(overrides={"max_session_bytes": 100})
    assert (await say(client, "s", "6*7"))[0] == 200  # question and reply: a few bytes
    status, body = await say(client, "s", "x" * 100)
    assert status == 413
    assert body["error"]["code"] == "session_too_large"
    assert "AGENTRY_MAX_SESSION_BYTES=100" in body["error"]["message"]
    assert await turns_of(client, "s") == 1


async def test_a_new_session_beyond_max_sessions_is_507_while_existing_ones_continue(
    make_client: MakeClient,
) -> None:
    client = await make_client(overrides={"max_sessions": 2})
    for session in ("a", "b"):
        assert (await say(client, session, "hi"))[0] == 200
    status, body = await say(client, "c", "hi")
    assert status == 507
    assert "AGENTRY_MAX_SESSIONS=2" in body["error"]["message"]
    assert (await say(client, "a", "still here"))[0] == 200
    assert (await client.delete("/v1/sessions/b")).status == 204
    assert (await say(client, "c", "now there is room"))[0] == 200


async def test_max_state_bytes_bounds_all_sessions_together(make_client: MakeClient) -> None:
    client = await make_client(overrides={"max_state_bytes": 1000})
    assert (await say(client, "a", "x" * 400))[0] == 200
    status, body = await say(client, "b", "y" * 700)
    assert status == 507
    assert "AGENTRY_MAX_STATE_BYTES=1000" in body["error"]["message"]


async def test_limits_count_the_sessions_restored_at_startup(
    make_client: MakeClient, keyring: KeyRing
) -> None:
    records = MemoryRecords()
    first = await make_client(
        overrides={"max_turns": 2}, store=MemoryStore(keyring, BASE, records=records)
    )
    for _ in range(2):
        await say(first, "s", "hi")
    await first.close()
    second = await make_client(
        overrides={"max_turns": 2}, store=MemoryStore(keyring, BASE, records=records)
    )
    assert (await say(second, "s", "again"))[0] == 409


async def test_idle_sessions_expire_and_that_tick_s_checkpoint_erases_them(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock
) -> None:
    records = MemoryRecords()
    client = await make_client(
        overrides={"session_idle_ttl_seconds": 60, "checkpoint_interval_seconds": 30},
        store=MemoryStore(keyring, BASE, records=records),
    )
    sessions = client.app[SERVICES].sessions
    await say(client, "quiet", "hello")
    await clock.advance(30)
    await say(client, "busy", "hello")
    await clock.advance(30)  # quiet: idle 60 s; busy: 30 s
    while sessions.last_checkpoint is None or sessions.last_checkpoint.generation < 2:
        await clock.advance(0)
    assert (await client.get("/v1/sessions/quiet")).status == 404
    assert (await client.get("/v1/sessions/busy")).status == 200
    assert list(records.checkpoints) == [sessions.last_checkpoint.generation]  # erased


async def test_restore_reads_the_newest_checkpoint_and_no_older_one(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PvcStore(tmp_path, keyring, BASE)
    await store.load()
    for turn in range(3):
        await store.checkpoint({anon("s"): [{"role": "user", "content": f"turn {turn}"}]})
    await store.close()
    read: list[str] = []
    original = Path.read_bytes

    def recording(path: Path) -> bytes:
        read.append(path.name)
        return original(path)

    monkeypatch.setattr(Path, "read_bytes", recording)
    restored = await PvcStore(tmp_path, keyring, BASE).load()
    assert restored.state[anon("s")][0]["content"] == "turn 2"
    assert [name for name in read if name.startswith("checkpoint-")] == ["checkpoint-00000003.agry"]


async def test_idle_time_survives_a_restart(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock
) -> None:
    records = MemoryRecords()
    overrides = {"session_idle_ttl_seconds": 60, "checkpoint_interval_seconds": 30}
    first = await make_client(
        overrides=overrides, store=MemoryStore(keyring, BASE, records=records)
    )
    await say(first, "old", "hello")
    await clock.advance(50)
    await first.close()
    second = await make_client(
        overrides=overrides, store=MemoryStore(keyring, BASE, records=records)
    )
    await say(second, "new", "hello")
    sessions = second.app[SERVICES].sessions
    restored = sessions.last_checkpoint.generation if sessions.last_checkpoint else 0
    await clock.advance(30)  # old: 80 s since its last message, new: 30 s
    while sessions.last_checkpoint is None or sessions.last_checkpoint.generation == restored:
        await clock.advance(0)
    assert (await second.get("/v1/sessions/old")).status == 404
    assert (await second.get("/v1/sessions/new")).status == 200

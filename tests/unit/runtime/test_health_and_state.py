"""Readiness, restore, checkpoints and the heartbeat payload.

Checks: /livez answers without any dependency; /readyz lists state, model, disk and
encryption like the API server (`[+]x ok`, `[-]x failed: reason`, final line, 500 on
failure) and as JSON; a disk short of space fails readiness; state restored from a
previous run is served; a wrong key leaves the runtime up but unready, sessions 503, and
the stored records byte-for-byte untouched; checkpoints follow the (injected) clock and a
final one is written on shutdown; the heartbeat carries the contract's fields.
"""

from __future__ import annotations

import copy
from pathlib import Path

from agent_runtime.app import record_context
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from agent_runtime.heartbeat import NullPublisher
from agent_runtime.services import SERVICES
from agent_runtime.state import MemoryStore, PvcStore
from tests.support.runtime import MakeClient, make_settings, next_heartbeat


async def test_livez_depends_on_nothing_and_readyz_lists_named_checks(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    assert (await client.get("/livez")).status == 200
    verbose = await client.get("/readyz?verbose")
    assert verbose.status == 200
    assert await verbose.text() == (
        "[+]state ok\n[+]model ok\n[+]disk ok\n[+]encryption ok\nreadyz check passed\n"
    )
    as_json = await (await client.get("/readyz", headers={"Accept": "application/json"})).json()
    assert as_json["status"] == "ok"
    assert set(as_json["checks"]) == {"state", "model", "disk", "encryption"}


async def test_too_little_disk_space_fails_readiness_with_a_reason(
    make_client: MakeClient,
) -> None:
    client = await make_client(overrides={"min_free_disk_bytes": 10**18})
    response = await client.get("/readyz?verbose")
    assert response.status == 500
    text = await response.text()
    assert "[-]disk failed: " in text
    assert text.endswith("readyz check failed\n")
    excluded = await client.get("/readyz?verbose&exclude=disk")
    assert excluded.status == 200
    assert "(excluded from this verdict)" in await excluded.text()
    assert (await client.get("/readyz?exclude=model")).status == 500


async def test_state_from_a_previous_run_is_restored(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    first_store = MemoryStore(keyring, record_context(settings))
    first = await make_client(store=first_store)
    await first.post("/v1/sessions/kept/messages", json={"content": "remember me"})
    await first.close()  # shutdown: final checkpoint
    second = await make_client(
        store=MemoryStore(keyring, record_context(settings), records=first_store.records)
    )
    messages = (await (await second.get("/v1/sessions/kept")).json())["messages"]
    assert messages[0] == {"role": "user", "content": "remember me"}


async def test_a_wrong_key_leaves_the_runtime_up_but_unready_and_the_state_untouched(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    store = MemoryStore(keyring, record_context(settings))
    writer = await make_client(store=store)
    await writer.post("/v1/sessions/secret/messages", json={"content": "hello"})
    await writer.close()
    before = copy.deepcopy(store.records)
    other_key = KeyRing.generate_development(tmp_path / "other-keys")
    reader = await make_client(
        keyring=other_key,
        store=MemoryStore(other_key, record_context(settings), records=store.records),
    )
    assert (await reader.get("/livez")).status == 200
    ready = await reader.get("/readyz?verbose")
    assert ready.status == 500
    assert "[-]state failed: " in await ready.text()
    refused = await reader.post("/v1/sessions/secret/messages", json={"content": "x"})
    assert refused.status == 503
    assert (await refused.json())["error"]["code"] == "state_unavailable"
    await reader.close()  # shutdown must not checkpoint over unreadable state
    assert store.records == before


async def test_checkpoints_follow_the_clock_and_a_final_one_is_written_on_shutdown(
    make_client: MakeClient, clock: ManualClock
) -> None:
    publisher = NullPublisher()
    client = await make_client(overrides={"checkpoint_interval_seconds": 30}, publisher=publisher)
    services = client.app[SERVICES]
    assert services.sessions.last_checkpoint is None
    await client.post("/v1/sessions/a/messages", json={"content": "one"})
    await clock.advance(29)
    assert services.sessions.last_checkpoint is None
    await clock.advance(1)
    while services.sessions.last_checkpoint is None:
        await clock.advance(0)
    assert services.sessions.last_checkpoint.generation == 1
    await clock.advance(30)  # nothing changed: no new generation
    assert services.sessions.last_checkpoint.generation == 1
    exposition = services.metrics.exposition().decode()
    assert "agentry_runtime_checkpoint_duration_seconds_count 1.0" in exposition
    await client.post("/v1/sessions/a/messages", json={"content": "two"})
    await client.close()
    last = publisher.published[-1]
    assert last["ready"] is False
    assert last["lastCheckpoint"]["generation"] == 2


async def test_the_heartbeat_carries_the_contract_fields(
    make_client: MakeClient, clock: ManualClock
) -> None:
    publisher = NullPublisher()
    client = await make_client(
        publisher=publisher, overrides={"rate_limit_rps": 1, "rate_limit_burst": 1}
    )
    await client.post("/v1/sessions/a/messages", json={"content": "one"})
    await client.post("/v1/sessions/a/messages", json={"content": "two"})  # 429
    heartbeat = await next_heartbeat(publisher, clock)
    assert heartbeat["v"] == 1
    assert heartbeat["ready"] is True
    assert heartbeat["circuit"] == "closed"
    assert heartbeat["health"] == {
        "state": "ok",
        "model": "ok",
        "disk": "ok",
        "encryption": "ok",
        "tools": "ok",  # no tool servers: nothing to fail
    }
    assert set(heartbeat["metrics"]) == {
        "requests",
        "ok",
        "degraded",
        "errors",
        "throttled",
        "rejected",
        "p50Ms",
        "p95Ms",
        "inputTokens",
        "outputTokens",
        "toolCalls",
    }
    assert heartbeat["metrics"]["requests"] == 2
    assert heartbeat["metrics"]["throttled"] == 1
    assert heartbeat["time"].endswith("Z")


async def test_after_a_key_rotation_the_next_checkpoint_uses_the_new_key_without_new_traffic(
    make_client: MakeClient, clock: ManualClock, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, checkpoint_interval_seconds=30)
    old = KeyRing({"k1": b"1" * 32}, "k1")
    store = MemoryStore(old, record_context(settings))
    writer = await make_client(settings=settings, keyring=old, store=store)
    await writer.post("/v1/sessions/a/messages", json={"content": "one"})
    await writer.close()  # final checkpoint under k1
    rotated = KeyRing({"k1": b"1" * 32, "k2": b"2" * 32}, "k2")
    reader = await make_client(
        settings=settings,
        keyring=rotated,
        store=MemoryStore(rotated, record_context(settings), records=store.records),
    )
    sessions = reader.app[SERVICES].sessions
    assert sessions.last_checkpoint is not None
    assert sessions.last_checkpoint.key_id == "k1"
    await clock.advance(30)
    for _ in range(100):
        if sessions.last_checkpoint.key_id == "k2":
            break
        await clock.advance(0)
    assert sessions.last_checkpoint.key_id == "k2"


async def test_a_corrupt_newest_checkpoint_is_reported_in_readyz_and_memory_survives(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    state_dir = tmp_path / "pvc"
    for turn in ("first", "second"):  # each run ends with a checkpoint of its own
        writer = await make_client(store=PvcStore(state_dir, keyring, record_context(settings)))
        assert (await writer.post("/v1/sessions/s/messages", json={"content": turn})).status == 200
        await writer.close()
    newest = sorted(state_dir.glob("checkpoint-*.agry"))[-1]
    damaged = bytearray(newest.read_bytes())
    damaged[-1] ^= 0xFF
    newest.write_bytes(bytes(damaged))
    reader = await make_client(store=PvcStore(state_dir, keyring, record_context(settings)))
    ready = await reader.get("/readyz?verbose")
    assert ready.status == 200
    state_line = (await ready.text()).splitlines()[0]
    assert state_line.startswith("[+]state ok (warning: ")
    assert "generation" in state_line
    detail = await (await reader.get("/readyz", headers={"Accept": "application/json"})).json()
    assert detail["checks"]["state"]["warning"]
    session = await (await reader.get("/v1/sessions/s")).json()
    assert [m["content"] for m in session["messages"] if m["role"] == "user"] == [
        "first",
        "second",
    ]
    await reader.close()

"""The postgres backend against a real PostgreSQL server (one database per test).

Two ``SharedSessionService`` instances on one database play two replicas behind a Service.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from agentry_cluster.postgres import PostgresServer
from aiohttp.test_utils import TestClient, TestServer

from agent_runtime.app import create_app
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from agent_runtime.errors import (
    SessionCapacityReached,
    SessionNotFound,
    SessionTurnLimit,
    StateUnavailable,
)
from agent_runtime.heartbeat import NullPublisher
from agent_runtime.quotas import SessionLimits
from agent_runtime.shared_sessions import SharedSessionService
from agent_runtime.state import StateError
from agent_runtime.state.postgres import SCHEMA_VERSION
from agent_runtime.state.postgres.schema import MIGRATIONS
from tests.support.pg_proxy import PostgresRelay
from tests.support.runtime import make_settings, next_heartbeat, readiness_of_state
from tests.support.shared_state import CountingProvider, replica

Replicas = Callable[..., SharedSessionService]


@pytest.fixture
async def replicas(postgres_url: str, keyring: KeyRing) -> AsyncIterator[Replicas]:
    """Started replicas on this test's database, closed afterwards."""
    made: list[SharedSessionService] = []

    async def make(**kwargs: object) -> SharedSessionService:
        kwargs.setdefault("keyring", keyring)
        service = replica(postgres_url, **kwargs)  # type: ignore[arg-type]
        made.append(service)
        await service.start()
        return service

    yield make  # type: ignore[misc]
    for service in made:
        await service.store.close()


async def rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, server_settings={"search_path": "agentry"})
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_sixteen_concurrent_turns_on_two_replicas_are_turns_1_to_16(
    replicas: Replicas,
) -> None:
    provider = CountingProvider(delay=0.01)
    a = await replicas(name="demo-0", provider=provider)
    b = await replicas(name="demo-1", provider=provider)
    results = await asyncio.gather(
        *((a if i % 2 else b).post("anonymous", "s1", f"question {i}") for i in range(16))
    )
    assert sorted(r.turn for r in results) == list(range(1, 17))
    # Each reply saw every earlier committed turn, and its own question.
    assert all(r.reply == f"seen {r.turn}" for r in results)
    history = await a.get("anonymous", "s1")
    assert [m["role"] for m in history] == ["user", "assistant"] * 16
    assert sorted(m["content"] for m in history if m["role"] == "user") == sorted(
        f"question {i}" for i in range(16)
    )
    # The other replica's cache is checked against the row: it sees all 16 too.
    assert len(await b.get("anonymous", "s1")) == 32
    assert (await b.post("anonymous", "s1", "next")).turn == 17


async def test_database_holds_no_message_text(replicas: Replicas, postgres_url: str) -> None:
    service = await replicas()
    await service.post("alice", "s1", "the secret word is pineapple")
    dumped = [
        bytes(value) if isinstance(value, bytes) else str(value).encode()
        for table in ("sessions", "turns")
        for record in await rows(postgres_url, f"SELECT * FROM {table}")
        for value in record.values()
    ]
    assert dumped
    assert not any(b"pineapple" in value for value in dumped)
    assert not any(b"seen 1" in value for value in dumped)


async def test_row_copied_to_another_session_or_turn_fails_to_open(
    replicas: Replicas, postgres_url: str
) -> None:
    service = await replicas()
    await service.post("alice", "s1", "first")
    await service.post("alice", "s1", "second")
    await service.post("alice", "s2", "other")
    # Swap turns 1 and 2 of s1 (reorder), then read through a fresh replica (no cache).
    await rows(
        postgres_url,
        "UPDATE turns t SET sealed = o.sealed FROM turns o "
        "WHERE t.session_id = o.session_id AND t.turn + o.turn = 3",
    )
    fresh = await replicas(name="demo-1")
    with pytest.raises(StateUnavailable, match="does not open"):
        await fresh.get("alice", "s1")
    # Copy s1's (any) turn 1 over s2's turn 1.
    await rows(
        postgres_url,
        "UPDATE turns t SET sealed = o.sealed FROM turns o, sessions so, sessions st "
        "WHERE o.session_id = so.id AND so.session = 's1' AND o.turn = 1 "
        "AND t.session_id = st.id AND st.session = 's2' AND t.turn = 1",
    )
    with pytest.raises(StateUnavailable, match="does not open"):
        await fresh.get("alice", "s2")


async def test_owner_isolation_and_delete(replicas: Replicas, postgres_url: str) -> None:
    a = await replicas()
    b = await replicas(name="demo-1")
    await a.post("alice", "s1", "hi")
    with pytest.raises(SessionNotFound):
        await b.get("bob", "s1")
    with pytest.raises(SessionNotFound):
        await b.delete("bob", "s1")
    await b.delete("alice", "s1")
    assert await rows(postgres_url, "SELECT * FROM turns") == []
    assert await rows(postgres_url, "SELECT * FROM sessions") == []
    with pytest.raises(SessionNotFound):
        await a.get("alice", "s1")  # a's cached copy is not served
    assert (await a.post("alice", "s1", "again")).turn == 1


async def test_turn_limit_is_checked_on_the_shared_row(replicas: Replicas) -> None:
    limits = SessionLimits(max_turns=2)
    a = await replicas(limits=limits)
    b = await replicas(name="demo-1", limits=limits)
    await a.post("c", "s", "1")
    await b.post("c", "s", "2")
    with pytest.raises(SessionTurnLimit):
        await a.post("c", "s", "3")


async def test_outage_is_503_then_recovers_without_restart(
    replicas: Replicas, postgres_server: PostgresServer, postgres_url: str
) -> None:
    service = await replicas()
    assert (await service.post("c", "s", "before")).turn == 1
    postgres_server.stop(mode="fast")
    try:
        with pytest.raises(StateUnavailable) as caught:
            await service.post("c", "s", "during")
        assert caught.value.retry_after is not None
        assert caught.value.status == 503
        assert "postgresql://" not in caught.value.message
        with pytest.raises(StateError, match="database unreachable"):
            await service.store.probe()  # readiness: [-]state failed: <this>
    finally:
        postgres_server.start()
    assert (await service.post("c", "s", "after")).turn == 2
    history = await service.get("c", "s")
    assert [m["content"] for m in history if m["role"] == "user"] == ["before", "after"]


async def test_terminated_connections_reconnect(
    replicas: Replicas, postgres_server: PostgresServer, postgres_url: str
) -> None:
    service = await replicas()
    await service.post("c", "s", "one")
    postgres_server.terminate_backends(postgres_url.rsplit("/", 1)[1])
    turns = []
    for text in ("two", "three"):
        try:
            turns.append((await service.post("c", "s", text)).turn)
        except StateUnavailable:
            turns.append(0)  # the first call may meet the dead connection: 503, not 500
    assert turns[-1] in (2, 3)
    history = await service.get("c", "s")
    assert len(history) == 2 * turns[-1]


async def test_a_connection_the_server_ended_while_idle_is_503_once_then_replaced(
    postgres_url: str, keyring: KeyRing
) -> None:
    """The server's FATAL reaches a pooled idle connection before its close does (the
    race of the CI run that gave a 500 during a database outage): the next turn on that
    connection is a 503 naming the broken connection, and the one after is served."""
    async with PostgresRelay(postgres_url) as relay:
        service = replica(relay.url, keyring, pool_size=1)
        await service.start()
        try:
            assert (await service.post("c", "s", "one")).turn == 1
            assert relay.send_shutdown_without_closing() == 1
            await asyncio.sleep(0.05)  # the message is read; the connection looks open
            with pytest.raises(StateUnavailable) as caught:
                await service.post("c", "s", "two")
            assert caught.value.status == 503
            assert caught.value.retry_after is not None
            assert (await service.post("c", "s", "three")).turn == 2
        finally:
            await service.store.close()
    history = await rows(postgres_url, "SELECT turn FROM turns ORDER BY turn")
    assert [r["turn"] for r in history] == [1, 2]


async def test_replicas_starting_together_migrate_once(postgres_url: str, keyring: KeyRing) -> None:
    services = [replica(postgres_url, keyring, name=f"demo-{i}") for i in range(4)]
    try:
        assert all(await asyncio.gather(*(s.start() for s in services)))
    finally:
        for s in services:
            await s.store.close()
    assert [
        r["version"] for r in await rows(postgres_url, "SELECT version FROM schema_version")
    ] == [SCHEMA_VERSION]


async def test_a_version_1_database_is_upgraded_with_its_sessions(
    postgres_url: str, keyring: KeyRing
) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:  # a database as the first schema version left it, with a session in it
        await conn.execute("CREATE SCHEMA agentry; SET search_path TO agentry")
        for statement in MIGRATIONS[0]:
            await conn.execute(statement)
        await conn.execute(
            "CREATE TABLE schema_version (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
            "version integer NOT NULL); INSERT INTO schema_version VALUES (true, 1); "
            "INSERT INTO sessions (namespace, agent, client, session, created_at, updated_at) "
            "VALUES ('default', 'demo', 'c', 'kept', now(), now())"
        )
    finally:
        await conn.close()
    service = replica(postgres_url, keyring)
    try:
        assert await service.start()
        assert (await service.post("c", "kept", "first")).turn == 1
        assert (await service.post("c", "kept", "second")).reply == "seen 2"
    finally:
        await service.store.close()
    found = await rows(postgres_url, "SELECT version FROM agentry.schema_version")
    assert [r["version"] for r in found] == [SCHEMA_VERSION]
    table = await rows(postgres_url, "SELECT reloptions FROM pg_class WHERE relname = 'sessions'")
    assert table[0]["reloptions"] == ["fillfactor=70"]
    assert len(await rows(postgres_url, "SELECT id FROM agentry.sessions")) == 1


async def test_newer_schema_is_refused_not_crashed(
    replicas: Replicas, postgres_url: str, keyring: KeyRing
) -> None:
    await replicas()
    await rows(postgres_url, "UPDATE schema_version SET version = 99")
    newer = replica(postgres_url, keyring)
    try:
        assert not await newer.start()
        assert newer.unavailable_reason is not None
        assert "version 99" in newer.unavailable_reason
        with pytest.raises(StateUnavailable, match="newer than this runtime"):
            await newer.post("c", "s", "hi")
    finally:
        await newer.store.close()


async def test_rotation_reencrypts_every_old_row(
    replicas: Replicas, postgres_url: str, tmp_path: Path
) -> None:
    old = KeyRing({"k1": b"1" * 32}, "k1")
    before = await replicas(keyring=old)
    for i in range(7):
        await before.post("c", f"s{i}", "hello")
    rotated = KeyRing({"k1": b"1" * 32, "k2": b"2" * 32}, "k2")
    after = await replicas(keyring=rotated, name="demo-1")
    await after.maintain()
    assert after.stats is not None
    assert after.stats.rows_under_old_keys == 0
    assert after.stats.sessions == 7
    assert {r["key_id"] for r in await rows(postgres_url, "SELECT key_id FROM turns")} == {"k2"}
    only_new = KeyRing({"k2": b"2" * 32}, "k2")
    reader = await replicas(keyring=only_new, name="demo-2")
    assert (await reader.get("c", "s3"))[0]["content"] == "hello"
    assert base64  # the keys above are raw bytes, as KeyRing takes them


async def test_retention_expires_idle_sessions_only(replicas: Replicas) -> None:
    clock = ManualClock()
    service = await replicas(clock=clock, retention_seconds=3600)
    await service.post("c", "old", "hi")
    await clock.advance(timedelta(hours=2).total_seconds())
    await service.post("c", "new", "hi")
    assert await service.expire_idle() == 1
    with pytest.raises(SessionNotFound):
        await service.get("c", "old")
    assert len(await service.get("c", "new")) == 2


async def test_cache_is_bounded_and_sessions_load_on_demand(replicas: Replicas) -> None:
    service = await replicas(cache_sessions=3)
    for i in range(10):
        await service.post("c", f"s{i}", "hi")
    assert len(service.cache) == 3
    assert len(await service.get("c", "s0")) == 2  # evicted, read back from the database
    assert len(service.cache) == 3


@pytest.fixture
async def pg_client(
    postgres_url: str, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], NullPublisher]]:
    """The whole app on the postgres backend, as production builds it."""
    settings = make_settings(
        tmp_path,
        state_backend="postgres",
        postgres_url=postgres_url,
        model_timeout_seconds=10.0,  # the outage answers at once (refused): no need to wait
    )
    publisher = NullPublisher()
    app = create_app(settings, clock=clock, keyring=keyring, publisher=publisher)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, publisher
    await client.close()


async def test_http_outage_is_503_with_retry_after_and_unready_then_recovers(
    pg_client: tuple[TestClient[Any, Any], NullPublisher],
    postgres_server: PostgresServer,
    clock: ManualClock,
    keyring: KeyRing,
) -> None:
    client, publisher = pg_client
    response = await client.post("/v1/sessions/s1/messages", json={"content": "hello"})
    assert response.status == 200
    assert (await response.json())["turn"] == 1
    assert await readiness_of_state(client) == (200, "[+]state ok")
    beat = await next_heartbeat(publisher, clock)
    assert beat["state"]["backend"] == "postgres"
    assert beat["state"]["rowsUnderOldKeys"] == 0
    assert beat["state"]["activeKeyId"] == keyring.active_key_id
    assert beat["state"]["sessions"] == 1
    assert beat["lastCheckpoint"] is None
    postgres_server.stop(mode="fast")
    try:
        response = await client.post("/v1/sessions/s1/messages", json={"content": "lost?"})
        assert response.status == 503
        assert response.headers["Retry-After"] == "2"
        body = await response.json()
        assert body["error"]["code"] == "state_unavailable"
        assert "session store unavailable" in body["error"]["message"]
        status, line = await readiness_of_state(client)
        assert status == 500
        assert line.startswith("[-]state failed: database unreachable")
        # The probe the operator gives postgres pods leaves the shared database out, so
        # the pods stay in the Service and clients get this 503 with Retry-After.
        probe = await client.get("/readyz?exclude=state&verbose")
        assert probe.status == 200
        assert "[-]state failed: database unreachable" in await probe.text()
        assert (await client.get("/readyz?exclude=state")).status == 200
    finally:
        postgres_server.start()
    response = await client.post("/v1/sessions/s1/messages", json={"content": "back"})
    assert (await response.json())["turn"] == 2
    page = await (await client.get("/v1/sessions/s1")).json()
    assert [m["content"] for m in page["messages"] if m["role"] == "user"] == ["hello", "back"]
    assert page["total"] == 4
    assert await readiness_of_state(client) == (200, "[+]state ok")


async def ignore_delta(text: str, degraded: bool) -> None:
    return None


async def test_a_streamed_turn_waiting_on_another_replicas_lock_gives_up_at_its_deadline(
    replicas: Replicas,
) -> None:
    # Streamed turns take the row lock (a sent reply cannot be asked again).
    slow = await replicas(provider=CountingProvider(delay=2.0), timeout_seconds=10.0)
    impatient = await replicas(name="demo-1", timeout_seconds=0.5)
    holding = asyncio.create_task(slow.post("c", "s", "slow one", on_delta=ignore_delta))
    await asyncio.sleep(0.3)  # the slow turn holds the row lock, waiting on its model
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StateUnavailable) as caught:
        await impatient.post("c", "s", "in a hurry", on_delta=ignore_delta)
    assert loop.time() - started < 1.5  # bounded by its deadline, not the other turn
    assert caught.value.retry_after is not None
    assert (await holding).turn == 1
    assert (await impatient.post("c", "s", "later")).turn == 2


def conflicts(service: SharedSessionService) -> float:
    value = service._metrics.registry.get_sample_value("agentry_runtime_turn_conflicts_total")
    return value or 0.0


async def test_a_reply_computed_before_another_replicas_turn_is_asked_again(
    replicas: Replicas,
) -> None:
    slow = await replicas(provider=CountingProvider(delay=1.0))
    quick = await replicas(name="demo-1")
    late = asyncio.create_task(slow.post("c", "s", "asked first"))
    await asyncio.sleep(0.3)  # `late` has read the session (empty) and waits on its model
    first = await quick.post("c", "s", "answered first")
    assert (first.turn, first.reply) == (1, "seen 1")
    # The slow reply was computed on an empty session: it is not stored as turn 1, and
    # the turn is asked again with turn 1 in view.
    second = await late
    assert (second.turn, second.reply) == (2, "seen 2")
    assert (conflicts(slow), conflicts(quick)) == (1, 0)
    history = await quick.get("c", "s")
    assert [m["content"] for m in history] == ["answered first", "seen 1", "asked first", "seen 2"]


async def test_a_plain_turn_holds_no_connection_while_the_model_answers(
    replicas: Replicas,
) -> None:
    # With one pooled connection, a turn that held it during the model call would leave
    # none for anything else on the replica: here the model itself asks for one.
    probes: list[str] = []

    class ProbingProvider(CountingProvider):
        async def complete(self, conversation: Any, *, deadline: float | None = None) -> str:
            try:
                await service.store.probe(budget=1.0)
                probes.append("ok")
            except StateError as error:
                probes.append(str(error))
            return await super().complete(conversation, deadline=deadline)

    service = await replicas(provider=ProbingProvider(), pool_size=1)
    assert (await service.post("c", "s", "one")).turn == 1
    assert (await service.post("c", "s", "two")).turn == 2
    assert probes == ["ok", "ok"]
    # A streamed turn holds its transaction open, as documented.
    await service.post("c", "s", "three", on_delta=ignore_delta)
    assert probes[2].startswith("database unreachable")


async def test_session_count_limit_counts_the_agents_sessions_in_the_database(
    replicas: Replicas,
) -> None:
    limits = SessionLimits(max_sessions=3)
    a = await replicas(limits=limits)
    for i in range(3):
        await a.post("c", f"s{i}", "hi")
    with pytest.raises(SessionCapacityReached):
        await a.post("c", "s3", "one too many")
    b = await replicas(name="demo-1", limits=limits)  # counts the database at start
    with pytest.raises(SessionCapacityReached):
        await b.post("other", "s0", "a new session elsewhere")
    assert (await b.post("c", "s1", "an existing one goes on")).turn == 2

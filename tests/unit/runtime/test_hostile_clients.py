"""One hostile client must not fail other clients' requests (issue 16, items 1, 2 and 16).

Checks, with the review's load shapes bounded to a few seconds: the poison rounds (posts
of a lone surrogate next to innocent turns on the pvc store) leave every innocent turn
acknowledged and stored; the trickling sockets (as many connections as MAX_CONCURRENT,
each sending its body a byte at a time) leave other clients served, and themselves get
408 once their body is overdue; one client cannot hold more than its own in-flight slots;
an address that keeps failing authentication gets 429 before its token is looked at; a
client that hangs up in the middle of its body is not counted as a server error.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from aiohttp import web

from agent_runtime.app import create_app, record_context
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from agent_runtime.lifecycle import make_runner
from agent_runtime.services import SERVICES
from agent_runtime.state import MemoryStore, PvcStore
from tests.support.fake_provider import FakeProvider
from tests.support.runtime import MakeClient, make_settings

POISON = b'{"content": "\\ud800"}'


async def test_poison_posts_next_to_innocent_turns_fail_only_themselves(
    make_client: MakeClient, tmp_path: Path, keyring: KeyRing
) -> None:
    settings = make_settings(tmp_path, state_backend="pvc")
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    client = await make_client(settings=settings, store=store)
    rounds, innocent, poison = 30, 5, 2

    async def post(session: str, raw: bytes) -> int:
        headers = {"Content-Type": "application/json"}
        response = await client.post(f"/v1/sessions/{session}/messages", data=raw, headers=headers)
        return response.status

    for r in range(rounds):
        statuses = await asyncio.gather(
            *(post(f"innocent-{i}", b'{"content": "turn %d"}' % r) for i in range(innocent)),
            *(post(f"poison-{i}", POISON) for i in range(poison)),
        )
        assert statuses == [200] * innocent + [400] * poison, f"round {r}"
    for i in range(innocent):
        stored = await (await client.get(f"/v1/sessions/innocent-{i}")).json()
        assert len(stored["messages"]) == 2 * rounds


async def trickle(host: str, port: int, client_id: str, *, bytes_sent: int = 12) -> str:
    """Send a POST's headers, then its body one byte every 0.25 s; the status line received."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        "POST /v1/sessions/slow/messages HTTP/1.1\r\nHost: agent\r\n"
        f"X-Client-ID: {client_id}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    status = asyncio.ensure_future(reader.readline())
    try:
        writer.write(head.encode())
        for _ in range(bytes_sent):
            writer.write(b" ")
            await writer.drain()
            await asyncio.wait({status}, timeout=0.25)
            if status.done():
                break
        return (await asyncio.wait_for(status, timeout=2)).decode()
    except (ConnectionError, TimeoutError):
        return status.result().decode() if status.done() else "no answer"
    finally:
        status.cancel()
        writer.close()


async def test_trickling_bodies_do_not_take_the_slots_other_clients_need(
    make_client: MakeClient,
) -> None:
    slots = 8
    client = await make_client(
        overrides={"max_concurrent": slots, "body_read_timeout_seconds": 1.0}
    )
    host, port = client.server.host, client.server.port
    assert port is not None
    tricklers = [asyncio.create_task(trickle(host, port, f"slow-{i}")) for i in range(slots)]
    try:
        await asyncio.sleep(0.2)  # every trickler's headers are in; its body is arriving
        for n in range(10):
            response = await client.post(
                f"/v1/sessions/quick-{n}/messages",
                json={"content": "hello"},
                headers={"X-Client-ID": "quick"},
            )
            assert response.status == 200, await response.text()
        status_lines = await asyncio.gather(*tricklers)
    finally:
        for task in tricklers:
            task.cancel()
    assert all(line.startswith("HTTP/1.1 408") for line in status_lines), status_lines


async def test_one_client_cannot_hold_more_than_its_own_in_flight_slots(
    make_client: MakeClient,
) -> None:
    async with FakeProvider() as fake:
        fake.hang(2)
        overrides = fake.runtime_overrides(max_concurrent=8, max_concurrent_per_client=2)
        client = await make_client(overrides=overrides)

        async def post(client_id: str, session: str) -> tuple[int, str]:
            response = await client.post(
                f"/v1/sessions/{session}/messages",
                json={"content": "hi"},
                headers={"X-Client-ID": client_id},
            )
            return response.status, (await response.json()).get("error", {}).get("code", "")

        held = [asyncio.create_task(post("greedy", f"g{i}")) for i in range(2)]
        await fake.wait_for_completions(2)
        assert await post("greedy", "g3") == (429, "too_many_in_flight")
        assert await post("other", "o1") == (200, "")
        fake.release()
        assert [status for status, _ in await asyncio.gather(*held)] == [200, 200]
        assert await post("greedy", "g4") == (200, "")


async def test_failed_authentications_from_one_address_are_throttled_until_time_passes(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:tok-alice\n")
    client = await make_client(
        overrides={"auth_tokens_file": tokens, "auth_failures_per_minute": 3}
    )

    async def post(token: str) -> tuple[int, str, str | None]:
        response = await client.post(
            "/v1/sessions/s/messages",
            json={"content": "hi"},
            headers={"Authorization": f"Bearer {token}"},
        )
        code = (await response.json()).get("error", {}).get("code", "")
        return response.status, code, response.headers.get("Retry-After")

    guesses = [await post(f"guess-{i}") for i in range(3)]
    assert [status for status, _, _ in guesses] == [401, 401, 401]
    assert await post("guess-3") == (429, "auth_throttled", "20")
    assert (await post("tok-alice"))[:2] == (429, "auth_throttled")  # not even looked at
    await clock.advance(20)
    assert (await post("tok-alice"))[0] == 200


async def test_a_client_hanging_up_mid_body_is_not_a_server_error(
    tmp_path: Path, keyring: KeyRing, log_stream: io.StringIO
) -> None:
    settings = make_settings(tmp_path)
    app = create_app(
        settings, keyring=keyring, store=MemoryStore(keyring, record_context(settings))
    )
    runner = web.AppRunner(app, access_log=None)  # as lifecycle.run builds it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/sessions/s/messages HTTP/1.1\r\nHost: agent\r\n"
            b'Content-Length: 100\r\n\r\n{"content'
        )
        await writer.drain()
        writer.close()
        metrics = app[SERVICES].metrics
        async with asyncio.timeout(5):
            while metrics.summary()["requests"] == 0:  # noqa: ASYNC110 - no event to await
                await asyncio.sleep(0.01)
        assert metrics.summary()["errors"] == 0
    finally:
        await runner.cleanup()
    assert "unhandled error" not in log_stream.getvalue()


async def test_silent_and_header_trickling_connections_are_closed_at_the_idle_timeout(
    tmp_path: Path, keyring: KeyRing
) -> None:
    """Issue 12's slow clients: aiohttp kept a socket that never sent a request an hour."""
    settings = make_settings(tmp_path, idle_connection_timeout_seconds=0.5)
    app = create_app(
        settings, keyring=keyring, store=MemoryStore(keyring, record_context(settings))
    )
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        silent, silent_writer = await asyncio.open_connection(host, port)
        trickling, writer = await asyncio.open_connection(host, port)
        started = asyncio.get_running_loop().time()

        async def trickle_headers() -> None:
            for byte in b"GET /v1/sessions/s HTTP/1.1\r\nHost: agent\r\nX-Slow: yes":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)

        feeding = asyncio.create_task(trickle_headers())
        async with asyncio.timeout(5):
            assert await silent.read() == b""  # closed by the server, nothing answered
            assert await trickling.read() == b""
        assert asyncio.get_running_loop().time() - started < 2.5
        feeding.cancel()
        silent_writer.close()
        writer.close()
        # A connection that asks promptly is served as before.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: agent\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
    finally:
        await runner.cleanup()

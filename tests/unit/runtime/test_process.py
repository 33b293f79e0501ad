"""The real process: `python -m agent_runtime serve` with the pvc backend in tmp_path.

Checks: SIGTERM during a request closes the listener, lets the request finish with 200,
writes the final checkpoint and exits 0; with a shutdown delay, SIGTERM first fails
`/readyz` while turns are still answered, then exits 0; after `kill -9` following N
acknowledged POSTs, a restarted runtime has all N turns (the journal); a bad setting
exits 2 with one line; two processes on one PostgreSQL database serve one session in turn.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp

from tests.support.fake_provider import FakeProvider
from tests.support.runtime_process import environment, free_port, runtime, spawn, wait_until


async def test_sigterm_mid_request_drains_it_checkpoints_and_exits_0(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("sk-test-valid")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeProvider() as fake:
        env = environment(
            tmp_path,
            port,
            AGENTRY_MODEL_PROVIDER="openai",
            AGENTRY_MODEL_ENDPOINT=fake.url,
            AGENTRY_MODEL_NAME="m",
            AGENTRY_MODEL_API_KEY_FILE=str(key),
        )
        async with runtime(env) as process, aiohttp.ClientSession() as http:
            fake.hang(1)
            pending = asyncio.create_task(
                http.post(f"{base}/v1/sessions/s/messages", json={"content": "slow"})
            )
            await fake.received.wait()
            process.send_signal(signal.SIGTERM)

            def listener_closed() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                except OSError:
                    return True
                return False

            await wait_until(listener_closed)
            assert process.returncode is None  # still draining the held request
            fake.release()
            response = await pending
            assert response.status == 200
            assert (await response.json())["reply"] == "model says: slow"
            assert await asyncio.wait_for(process.wait(), 20) == 0
    checkpoints = list((tmp_path / "state").rglob("*"))
    assert checkpoints, "a final checkpoint was written"
    assert not any(b"slow" in p.read_bytes() for p in checkpoints if p.is_file())


async def test_sigterm_keeps_serving_unready_for_the_shutdown_delay_then_exits_0(
    tmp_path: Path,
) -> None:
    """The review saw /readyz refused 0.3 s after SIGTERM: traffic still routed was lost."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = environment(tmp_path, port, AGENTRY_SHUTDOWN_DELAY_SECONDS="3")
    async with runtime(env) as process, aiohttp.ClientSession() as http:
        process.send_signal(signal.SIGTERM)

        async def unready() -> bool:
            async with http.get(f"{base}/readyz") as response:
                return response.status == 500

        await wait_until(unready)
        async with http.post(f"{base}/v1/sessions/s/messages", json={"content": "2+2"}) as turn:
            assert turn.status == 200
        assert process.returncode is None
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_after_kill_9_every_acknowledged_turn_is_recovered(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = environment(tmp_path, port, AGENTRY_CHECKPOINT_INTERVAL_SECONDS="3600")
    acknowledged = 25
    async with runtime(env) as process, aiohttp.ClientSession() as http:
        for i in range(acknowledged):
            async with http.post(
                f"{base}/v1/sessions/s{i % 3}/messages", json={"content": f"turn {i}"}
            ) as response:
                assert response.status == 200
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    async with runtime(env), aiohttp.ClientSession() as http:
        seen = []
        for sid in ("s0", "s1", "s2"):
            async with http.get(f"{base}/v1/sessions/{sid}") as response:
                body = await response.json()
                seen += [m["content"] for m in body["messages"] if m["role"] == "user"]
    assert sorted(seen) == sorted(f"turn {i}" for i in range(acknowledged))


async def test_a_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    env = environment(tmp_path, 8080, AGENTRY_PORT="70000")
    process = await spawn(env)
    _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode() == "error: AGENTRY_PORT: must be between 1 and 65535 (got 70000)\n"


async def test_two_processes_on_postgres_serve_one_session_alternately(
    tmp_path: Path, postgres_url: str
) -> None:
    """The issue's complaint (turns 1, 2, 1, 1, 2, 2 through a Service): two replicas on
    one database number one session's turns 1..6, and a replica killed with -9 loses
    nothing the other acknowledged."""
    from agent_runtime.crypto import KeyRing

    KeyRing.generate_development(tmp_path / "keys")
    envs = [
        environment(
            tmp_path / f"r{i}",
            free_port(),
            AGENTRY_STATE_BACKEND="postgres",
            AGENTRY_POSTGRES_URL=postgres_url,
            AGENTRY_KEYS_DIR=str(tmp_path / "keys"),
            AGENTRY_REPLICA=f"demo-{i}",
        )
        for i in range(2)
    ]
    for i in range(2):
        (tmp_path / f"r{i}").mkdir()
    bases = [f"http://127.0.0.1:{env['AGENTRY_PORT']}" for env in envs]
    async with runtime(envs[0]) as first, runtime(envs[1]), aiohttp.ClientSession() as http:
        turns = []
        for i in range(6):
            async with http.post(
                f"{bases[i % 2]}/v1/sessions/svc-sess/messages", json={"content": f"turn {i}"}
            ) as response:
                assert response.status == 200
                turns.append((await response.json())["turn"])
        assert turns == [1, 2, 3, 4, 5, 6]
        first.send_signal(signal.SIGKILL)
        await first.wait()
        async with http.get(f"{bases[1]}/v1/sessions/svc-sess") as response:
            body = await response.json()
    assert [m["content"] for m in body["messages"] if m["role"] == "user"] == [
        f"turn {i}" for i in range(6)
    ]

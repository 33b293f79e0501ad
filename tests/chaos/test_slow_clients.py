"""Slow clients: 500 idle or trickling connections (runtime process level).

250 connections send nothing and 250 send their request headers one byte a second. A
normal client's turns are timed before and while they are open: its p99 must stay near
what it was, and every slow connection must be closed by the runtime's idle-connection
timeout (5 s here, 30 s with AGENTRY_CHAOS_FULL=1, 75 s by default), without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.conftest import Figure, scaled
from tests.support.runtime_process import open_sockets, scenario_runtime, wait_until

pytestmark = pytest.mark.chaos

SLOW = 500
IDLE_TIMEOUT = scaled(5, 30)
# A loaded 2-core machine shares its CPU between the runtime, 500 sockets and the client.
SLACK_SECONDS = 0.25


async def normal_turns(base: str, seconds: float) -> list[float]:
    """One client's sequential turns for `seconds`: their latencies."""
    latencies = []
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        turn = 0
        while time.monotonic() < stop:
            started = time.monotonic()
            url = f"{base}/v1/sessions/normal-{turn // 500}/messages"
            async with http.post(url, json={"content": "hello"}) as response:
                assert response.status == 200
                await response.read()
            latencies.append(time.monotonic() - started)
            turn += 1
            await asyncio.sleep(0.02)
    return sorted(latencies)


def p99(latencies: list[float]) -> float:
    return latencies[int(len(latencies) * 0.99) - 1]


async def slow_connection(port: int, trickle: bool, opened: list[int]) -> tuple[float, bytes]:
    """Connect, then send nothing or a header byte a second; (seconds open, bytes answered)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened.append(1)
    header = b"GET /v1/sessions/slow HTTP/1.1\r\nHost: agent\r\nX-Slow: " + b"y" * 100
    answered = b""
    try:
        if trickle:
            for byte in header:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    answered = await asyncio.wait_for(reader.read(1024), 1.0)
                    break  # closed (b"") or answered
        else:
            answered = await reader.read(1024)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started, answered


async def test_five_hundred_slow_connections_leave_normal_turns_served_and_are_closed(
    tmp_path: Path, figure: Figure
) -> None:
    idle = {"AGENTRY_IDLE_CONNECTION_TIMEOUT_SECONDS": str(IDLE_TIMEOUT)}
    async with scenario_runtime(tmp_path, **idle) as started:
        baseline = await normal_turns(started.base, scaled(5, 15))
        opened: list[int] = []
        slow = [
            asyncio.create_task(slow_connection(started.port, n % 2 == 1, opened))
            for n in range(SLOW)
        ]
        await wait_until(lambda: len(opened) == SLOW, 10)
        await asyncio.sleep(0.2)  # the runtime's accept() catches up
        held = open_sockets(started.process.pid)
        # While all of them are open:
        during = await normal_turns(started.base, IDLE_TIMEOUT - 1)
        async with asyncio.timeout(30):
            results = await asyncio.gather(*slow)
        assert started.process.returncode is None

    open_for = sorted(s for s, _ in results)
    figure("slow_connections", SLOW)
    figure("runtime_sockets_with_them_open", held)
    figure("normal_p99_ms_before_during", f"{p99(baseline) * 1000:.0f} -> {p99(during) * 1000:.0f}")
    figure("slow_connection_lifetime_s_min_max", f"{open_for[0]:.1f} .. {open_for[-1]:.1f}")
    assert held >= SLOW, "the slow connections were open at the same time"
    assert p99(during) <= 3 * p99(baseline) + SLACK_SECONDS, (p99(baseline), p99(during))
    assert all(answer == b"" for _, answer in results), "closed without an answer"
    assert open_for[0] >= IDLE_TIMEOUT - 0.5, "not closed before the timeout"
    assert open_for[-1] <= IDLE_TIMEOUT + 5, "every slow connection was closed"

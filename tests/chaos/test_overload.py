"""Overload at 100 times the rate limit (runtime process level).

A runtime limited to 10 requests a second is sent about 1,000 a second for 15 s (60 s with
AGENTRY_CHAOS_FULL=1) by 50 paced clients. The requests it admits must keep a low
latency, the rest must be 429s with Retry-After, its memory must stay bounded, and it must
still be alive and answering afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from agentry_cluster.processes import rss_bytes

from tests.chaos.conftest import Figure, scaled
from tests.support.runtime_process import scenario_runtime

pytestmark = pytest.mark.chaos

LIMIT_RPS = 10
WORKERS = 50
INTERVAL = WORKERS / (100 * LIMIT_RPS)  # each worker's pace for 100x the limit in total
MIB = 1024 * 1024


async def test_a_hundred_times_the_rate_limit_is_refused_with_429_and_memory_stays_bounded(
    tmp_path: Path, figure: Figure
) -> None:
    seconds = scaled(15, 60)
    limit = {"AGENTRY_RATE_LIMIT_RPS": str(LIMIT_RPS), "AGENTRY_RATE_LIMIT_PER_CLIENT": "false"}
    admitted: list[float] = []
    statuses: dict[int, int] = {}
    async with scenario_runtime(tmp_path, **limit) as runtime:
        process, base = runtime.process, runtime.base
        rss_before = rss_bytes(process.pid)
        stop = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=WORKERS)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def worker(n: int) -> None:
                turn = 0
                next_at = time.monotonic() + n * INTERVAL / WORKERS
                while (now := time.monotonic()) < stop:
                    await asyncio.sleep(max(0.0, next_at - now))
                    next_at += INTERVAL
                    started = time.monotonic()
                    url = f"{base}/v1/sessions/load-{n}-{turn // 500}/messages"
                    async with http.post(url, json={"content": "are you there?"}) as response:
                        await response.read()
                        if response.status == 429:
                            assert int(response.headers["Retry-After"]) >= 1
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        admitted.append(time.monotonic() - started)
                    turn += 1

            started = time.monotonic()
            await asyncio.gather(*(worker(n) for n in range(WORKERS)))
            elapsed = time.monotonic() - started
            async with http.get(f"{base}/livez") as response:
                alive = response.status
        rss_after = rss_bytes(process.pid)
        assert process.returncode is None, "the runtime crashed under load"

    sent = sum(statuses.values())
    admitted.sort()
    p99 = admitted[int(len(admitted) * 0.99) - 1]
    figure("duration_s", seconds)
    figure("offered_rps", round(sent / elapsed))
    figure("times_the_limit", round(sent / elapsed / LIMIT_RPS))
    figure("statuses", dict(sorted(statuses.items())))
    figure("admitted_p99_ms", round(p99 * 1000, 1))
    figure("rss_mib_before_after", f"{rss_before / MIB:.0f} -> {rss_after / MIB:.0f}")
    assert alive == 200
    assert set(statuses) == {200, 429}, statuses
    # The bucket admits about its rate: burst plus LIMIT_RPS a second, nothing more.
    assert statuses[200] <= LIMIT_RPS * (elapsed + 2), statuses
    assert rss_after - rss_before < 48 * MIB, (rss_before, rss_after)

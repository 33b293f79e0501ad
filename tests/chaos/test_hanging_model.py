"""A model endpoint that accepts the connection and never answers (runtime process level).

A TCP server takes every connection and reads the request but never writes a byte, the
way a provider behind a stuck load balancer behaves. Clients keep sending turns to a
runtime process pointed at it for the scenario's duration (25 s; 5 minutes with
AGENTRY_CHAOS_FULL=1). Every turn must end within the model timeout plus a bounded
margin, as a degraded reply; the circuit must open; and when the load stops, neither the
runtime nor the endpoint holds a socket of it any more.
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
from tests.support.silent_endpoint import SilentEndpoint

pytestmark = pytest.mark.chaos

MODEL_TIMEOUT = 3.0
# What a turn may take beyond the model timeout: the fallback reply, the journal append
# and a loaded 2-core machine's scheduling (load average up to 10 while the suite runs).
MARGIN = 4.0
WORKERS = 8


async def circuit_state(http: aiohttp.ClientSession, base: str) -> float:
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("agentry_runtime_circuit_state "))
    return float(line.split()[1])


async def test_a_model_that_never_answers_degrades_within_the_timeout_and_leaks_no_socket(
    tmp_path: Path, figure: Figure
) -> None:
    seconds = scaled(25, 300)
    key = tmp_path / "api-key"
    key.write_text("sk-test-valid")
    async with (
        SilentEndpoint() as silent,
        scenario_runtime(
            tmp_path,
            AGENTRY_MODEL_PROVIDER="openai",
            AGENTRY_MODEL_ENDPOINT=f"{silent.url}/v1",
            AGENTRY_MODEL_NAME="m",
            AGENTRY_MODEL_API_KEY_FILE=str(key),
            AGENTRY_MODEL_TIMEOUT_SECONDS=str(MODEL_TIMEOUT),
            AGENTRY_CIRCUIT_OPEN_SECONDS="5",
        ) as started,
    ):
        process = started.process
        sockets_before = open_sockets(process.pid)
        latencies, statuses, states = await turns_against(started.base, seconds)
        # Once the last turn is answered, no attempt of the runtime is still waiting,
        # and with the clients gone the runtime holds what it held before the load.
        await wait_until(lambda: silent.open_connections == 0, MODEL_TIMEOUT + MARGIN)
        with contextlib.suppress(AssertionError):  # compared below, with the figure
            await wait_until(lambda: open_sockets(process.pid) <= sockets_before, 5)
        sockets_after = open_sockets(process.pid)
        assert process.returncode is None

    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    figure("duration_s", seconds)
    figure("turns", len(latencies))
    figure("p99_s", round(p99, 2))
    figure("max_s", round(latencies[-1], 2))
    figure("turns_that_waited_for_the_model", sum(1 for x in latencies if x >= MODEL_TIMEOUT / 2))
    figure("endpoint_connections_accepted", silent.accepted)
    figure("open_sockets_to_endpoint_after", silent.open_connections)
    figure("runtime_sockets_before_after", f"{sockets_before} -> {sockets_after}")
    assert latencies[-1] <= MODEL_TIMEOUT + MARGIN, latencies[-5:]
    assert {s for s, _ in statuses} == {200}, "every turn is answered (degraded)"
    assert all(degraded for _, degraded in statuses)
    assert 2.0 in states, f"the circuit never opened (states seen: {states})"
    assert sockets_after <= sockets_before, (sockets_before, sockets_after)


async def turns_against(
    base: str, seconds: float
) -> tuple[list[float], list[tuple[int, bool]], set[float]]:
    """WORKERS clients sending turns for `seconds`, a new session every 200 turns (MAX_TURNS
    would refuse the 1001st), 0.1 s apart; the circuit's states seen meanwhile."""
    latencies: list[float] = []
    statuses: list[tuple[int, bool]] = []
    states: set[float] = set()
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:

        async def client(n: int) -> None:
            turn = 0
            while time.monotonic() < stop:
                started = time.monotonic()
                url = f"{base}/v1/sessions/hang-{n}-{turn // 200}/messages"
                async with http.post(url, json={"content": f"turn {turn}"}) as response:
                    body = await response.json()
                latencies.append(time.monotonic() - started)
                statuses.append((response.status, bool(body.get("degraded"))))
                turn += 1
                await asyncio.sleep(0.1)

        async def watch_circuit() -> None:
            while time.monotonic() < stop:
                states.add(await circuit_state(http, base))
                await asyncio.sleep(0.5)

        await asyncio.gather(watch_circuit(), *(client(n) for n in range(WORKERS)))
    return latencies, statuses, states

"""Runtime benchmarks: HTTP throughput against a bare aiohttp baseline, limiter decision
time, 1 MiB checkpoint time, and RSS with 10,000 sessions.

Servers and the load generator run as separate processes on loopback; the load generator
is an aiohttp client with a fixed number of concurrent workers for a fixed duration.
``--seconds`` sets the duration of each HTTP run (default 5: the whole run stays well
under two minutes). Results are written to the ``runtime-benchmark`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp

from benchmarks.report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]

BARE_SERVER = """
import sys
from aiohttp import web
async def handle(request):
    body = await request.json()
    return web.json_response({"reply": body["content"], "degraded": False, "turn": 1})
app = web.Application()
app.router.add_post("/v1/sessions/{id}/messages", handle)
app.router.add_get("/readyz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

LOADGEN = """
import asyncio, json, sys, time, aiohttp
async def main(url, seconds, workers, sessions):
    latencies = []
    stop = time.perf_counter() + seconds
    async def worker(n):
        async with aiohttp.ClientSession() as http:
            i = 0
            while time.perf_counter() < stop:
                sid = f"w{n}-{i % sessions}"
                t = time.perf_counter()
                async with http.post(url.format(sid), json={"content": "hello there"},
                                     headers={"X-Client-ID": f"c{n}"}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append(time.perf_counter() - t)
                i += 1
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    elapsed = time.perf_counter() - started
    print(json.dumps({"count": len(latencies), "seconds": elapsed, "latencies": latencies}))
asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server on port {port} never became ready")


async def load(port: int, seconds: float, workers: int, sessions: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/v1/sessions/{{}}/messages"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOADGEN,
        url,
        str(seconds),
        str(workers),
        str(sessions),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    data = json.loads(out)
    latencies = sorted(data["latencies"])
    return {
        "rps": data["count"] / data["seconds"],
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "count": data["count"],
    }


def runtime_env(port: int, state: Path, backend: str = "pvc") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_")}
    env.update(
        {
            "AGENTRY_HOST": "127.0.0.1",
            "AGENTRY_PORT": str(port),
            "AGENTRY_STATE_BACKEND": backend,
            "AGENTRY_STATE_DIR": str(state / "state"),
            "AGENTRY_LOG_DIR": str(state),
            "AGENTRY_HEARTBEAT": "none",
            "AGENTRY_LOG_LEVEL": "warning",
            "AGENTRY_RATE_LIMIT_RPS": "1000000",
            "AGENTRY_RATE_LIMIT_BURST": "1000000",
            "AGENTRY_MAX_CONCURRENT": "1024",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@contextlib.asynccontextmanager
async def serving(
    args: Callable[[int], list[str]], env: Callable[[int], dict[str, str]] | None = None
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """A server process on a free port (``args(port)``), ready, stopped on exit."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args(port), env=env(port) if env else None
    )
    try:
        await wait_ready(port)
        yield port, process
    finally:
        process.terminate()
        await process.wait()


@contextlib.asynccontextmanager
async def serving_runtime() -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """The runtime with the benchmark's settings and a throwaway state directory."""
    with tempfile.TemporaryDirectory() as tmp:
        serve = ["-m", "agent_runtime", "serve"]
        async with serving(lambda _: serve, lambda port: runtime_env(port, Path(tmp))) as server:
            yield server


async def http_benchmark(seconds: float, workers: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    async with serving(lambda port: ["-c", BARE_SERVER, str(port)]) as (port, _):
        results["bare aiohttp handler"] = await load(port, seconds, workers, 50)
    async with serving_runtime() as (port, _):
        results["runtime (builtin, limiter on, pvc + journal)"] = await load(
            port, seconds, workers, 50
        )
    return results


def limiter_benchmark(decisions: int = 200_000) -> float:
    from agent_runtime.ratelimit import RateLimiter

    limiter = RateLimiter(1e9, 10**9, per_client=True, max_clients=10_000, clock=time.monotonic)
    keys = [f"client-{i}" for i in range(1000)]
    started = time.perf_counter()
    for i in range(decisions):
        limiter.decide(keys[i % 1000])
    return (time.perf_counter() - started) / decisions * 1e6


async def checkpoint_benchmark(runs: int = 5) -> float:
    from agent_runtime.crypto import KeyRing, RecordContext
    from agent_runtime.state import ANONYMOUS_CLIENT, PvcStore, SessionKey

    with tempfile.TemporaryDirectory() as tmp:
        keyring = KeyRing.generate_development(Path(tmp) / "keys")
        store = PvcStore(Path(tmp) / "state", keyring, RecordContext("ns", "a", "a-0", ""))
        await store.load()
        text = "x" * 1000
        state = {
            SessionKey(ANONYMOUS_CLIENT, f"s{i}"): [{"role": "user", "content": text}]
            for i in range(1040)
        }
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            info = await store.checkpoint(state)
            timings.append(time.perf_counter() - started)
        await store.close()
    assert info.bytes >= 1024 * 1024
    return statistics.median(timings) * 1000


async def rss_benchmark(sessions: int) -> float:
    async with serving_runtime() as (port, runtime):
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def post(i: int) -> None:
                async with http.post(
                    f"http://127.0.0.1:{port}/v1/sessions/s{i}/messages",
                    json={"content": f"hello from session {i}"},
                ) as response:
                    assert response.status == 200

            for start in range(0, sessions, 500):
                await asyncio.gather(*(post(i) for i in range(start, start + 500)))
        status = await asyncio.to_thread(Path(f"/proc/{runtime.pid}/status").read_text)
        rss_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
    return rss_kb / 1024


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    http = await http_benchmark(args.seconds, args.workers)
    limiter_us = limiter_benchmark()
    checkpoint_ms = await checkpoint_benchmark()
    rss_mb = await rss_benchmark(args.sessions)
    names = list(http)
    ratio = http[names[1]]["rps"] / http[names[0]]["rps"]
    rows = "\n".join(
        f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        for name, r in http.items()
    )
    total = time.perf_counter() - started
    body = f"""## Agent runtime

Command: `make bench` (`python -m benchmarks --seconds {args.seconds:g} --workers {args.workers}
--sessions {args.sessions}`), {time.strftime("%Y-%m-%d")}, total {total:.0f} s.
{machine()}
`POST /v1/sessions/{{id}}/messages` over loopback, {args.workers} concurrent aiohttp client
workers in a separate process, {args.seconds:g} s per server.

| server | requests/s | p50 ms | p99 ms |
|---|---|---|---|
{rows}

| figure | result | target |
|---|---|---|
| runtime / bare throughput | {ratio:.2f} | ≥ 0.5 |
| rate limiter decision | {limiter_us:.2f} µs | < 5 µs |
| 1 MiB checkpoint (pvc, seal + write + fsync) | {checkpoint_ms:.1f} ms | < 20 ms + fsync |
| runtime RSS with {args.sessions:,} sessions | {rss_mb:.0f} MB | < 120 MB |
"""
    write_section("runtime-benchmark", body)
    print(body)

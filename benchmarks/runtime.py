"""Runtime benchmarks: HTTP throughput at production settings against a bare aiohttp
handler, limiter decision time, 1 MiB checkpoint time, and RSS with 10,000 sessions.

Throughput (issue 13): the runtime as a pod runs it — ``AGENTRY_ENVIRONMENT=production``
with its defaults: pvc backend with its journal, encrypted, the rate limiter on (set far
above the load), the JSON access log at ``info`` written to a file as a container
runtime would — and two bare aiohttp handlers with the same route and JSON shapes: one
as ``aiohttp`` runs by default (asyncio's loop, the standard ``json``), the reference of
the ratio, and one on uvloop with orjson, which the runtime uses, to show how much of the
ratio is the loop and the JSON library. ``wrk`` (``benchmarks/load.py``) loads each in
turn, ``--rounds`` times, so that a change in the machine's load hits all of them; the
ratio of a round is the runtime's rate over the bare handler's in that round. Then the
runtime and the bare handler are paced at half the runtime's median rate for the latency
at half saturation. The access log is counted afterwards: one line per request answered.

Results are written to the ``runtime-benchmark`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from benchmarks import load
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

BARE_FAST_SERVER = """
import sys, orjson, uvloop
from aiohttp import web
async def handle(request):
    body = orjson.loads(await request.read())
    reply = {"reply": body["content"], "degraded": False, "turn": 1}
    return web.Response(body=orjson.dumps(reply), content_type="application/json")
app = web.Application()
app.router.add_post("/v1/sessions/{id}/messages", handle)
app.router.add_get("/readyz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""

RUNTIME = "runtime (production: pvc + journal, encrypted, limiter on, access log at info)"
BARE = "bare aiohttp handler (asyncio loop, json)"
BARE_FAST = "bare aiohttp handler (uvloop, orjson)"
ACCESS_ROUTE = '"route":"/v1/sessions/{id}/messages"'


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


def runtime_env(port: int, state: Path, backend: str = "pvc") -> dict[str, str]:
    """The environment of a runtime as a production pod has it (module docstring), with
    a key ring made under ``state`` and the limiter far above any benchmark's load."""
    from agent_runtime.crypto import KeyRing

    keys = state / "keys"
    KeyRing.generate_development(keys)  # reads the ring back when it is already there
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_")}
    env.update(
        {
            "AGENTRY_ENVIRONMENT": "production",
            "AGENTRY_HOST": "127.0.0.1",
            "AGENTRY_PORT": str(port),
            "AGENTRY_STATE_BACKEND": backend,
            "AGENTRY_STATE_DIR": str(state / "state"),
            "AGENTRY_KEYS_DIR": str(keys),
            "AGENTRY_LOG_DIR": str(state),
            "AGENTRY_HEARTBEAT": "none",  # no API server here to hold the Lease
            "AGENTRY_SHUTDOWN_DELAY_SECONDS": "0",  # no endpoints to take it out of
            "AGENTRY_RATE_LIMIT_RPS": "100000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@contextlib.asynccontextmanager
async def serving(
    args: Callable[[int], list[str]],
    env: Callable[[int], dict[str, str]] | None = None,
    stderr: IO[bytes] | int | None = None,
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """A server process on a free port (``args(port)``), ready, stopped on exit."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args(port), env=env(port) if env else None, stderr=stderr
    )
    try:
        await wait_ready(port)
        yield port, process
    finally:
        process.terminate()
        await process.wait()


@contextlib.asynccontextmanager
async def serving_runtime(
    stderr: IO[bytes] | int | None = asyncio.subprocess.DEVNULL,
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """The runtime at production settings with a throwaway state directory; its log
    (a line per request) goes nowhere unless ``stderr`` says where."""
    with tempfile.TemporaryDirectory() as tmp:
        serve = ["-m", "agent_runtime", "serve"]
        env = lambda port: runtime_env(port, Path(tmp))  # noqa: E731
        async with serving(lambda _: serve, env, stderr) as server:
            yield server


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    port: int
    pid: int
    runs: list[load.Result] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds over its measured runs

    async def measure(self, seconds: float, connections: int) -> load.Result:
        before = cpu_seconds(self.pid)
        result = await load.wrk(self.port, seconds=seconds, connections=connections)
        self.cpu += cpu_seconds(self.pid) - before
        self.runs.append(result)
        return result

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    def median_run(self) -> load.Result:
        return sorted(self.runs, key=lambda r: r.rps)[len(self.runs) // 2]


@dataclass
class Throughput:
    servers: dict[str, Server]
    loads: list[float]  # 1-minute load average at the start of each round, then at the end
    paced: dict[tuple[str, bool], load.Result]  # (server, random waits) -> result
    rate: float
    access_lines: int
    warm_up_requests: int

    def ratios(self, reference: str) -> list[float]:
        runtime, bare = self.servers[RUNTIME].runs, self.servers[reference].runs
        return [r.rps / b.rps for r, b in zip(runtime, bare, strict=True)]


async def http_benchmark(seconds: float, connections: int, rounds: int) -> Throughput:
    load.wrk_path()  # fail before starting anything when wrk is missing
    with tempfile.TemporaryFile() as log:
        async with (
            serving_runtime(stderr=log) as (runtime_port, runtime),
            serving(lambda port: ["-c", BARE_SERVER, str(port)]) as (bare_port, bare),
            serving(lambda port: ["-c", BARE_FAST_SERVER, str(port)]) as (fast_port, fast),
        ):
            servers = {
                RUNTIME: Server(RUNTIME, runtime_port, runtime.pid),
                BARE: Server(BARE, bare_port, bare.pid),
                BARE_FAST: Server(BARE_FAST, fast_port, fast.pid),
            }
            warm_up = {  # sessions exist, connections and caches warm
                name: await load.wrk(server.port, seconds=2, prefix="w")
                for name, server in servers.items()
            }
            loads = []
            for _ in range(rounds):
                loads.append(os.getloadavg()[0])
                for server in servers.values():
                    await server.measure(seconds, connections)
            loads.append(os.getloadavg()[0])
            rate = statistics.median(r.rps for r in servers[RUNTIME].runs) / 2
            paced = {
                (name, random_waits): await load.wrk(
                    servers[name].port,
                    seconds=seconds,
                    connections=connections,
                    rate=rate,
                    random_waits=random_waits,
                )
                for random_waits in (False, True)
                for name in (RUNTIME, BARE)
            }
        answered_apart = warm_up[RUNTIME].requests + sum(
            result.requests for (name, _), result in paced.items() if name == RUNTIME
        )
        log.seek(0)
        access = sum(1 for line in log if ACCESS_ROUTE.encode() in line)
    return Throughput(servers, loads, paced, rate, access, answered_apart)


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


def spread(values: list[float], digits: int = 2) -> str:
    """min / median / max."""
    shown = [min(values), statistics.median(values), max(values)]
    return " / ".join(f"{v:.{digits}f}" for v in shown)


def render_throughput(t: Throughput, args: argparse.Namespace) -> str:
    names = list(t.servers)
    header = " | ".join(["round", "load average", *[f"{n} req/s" for n in names]])
    lines = [f"| {header} | runtime / bare | runtime / bare (uvloop, orjson) |"]
    lines.append("|" + "---|" * (len(names) + 4))
    for i in range(args.rounds):
        rates = [f"{t.servers[n].runs[i].rps:.0f}" for n in names]
        ratios = f"{t.ratios(BARE)[i]:.2f} | {t.ratios(BARE_FAST)[i]:.2f}"
        lines.append(f"| {i + 1} | {t.loads[i]:.1f} | {' | '.join(rates)} | {ratios} |")
    rows = "\n".join(lines)
    latency = "\n".join(
        f"| {name} | {spread([r.rps for r in server.runs], 0)} | "
        f"{server.median_run().p50_ms:.2f} | {server.median_run().p99_ms:.2f} | "
        f"{sum(r.non_2xx + r.socket_errors for r in server.runs)} | "
        f"{server.requests / server.cpu:.0f} |"
        for name, server in t.servers.items()
        if server.cpu > 0
    )
    paced = "\n".join(
        f"| {name} | {'random' if random_waits else 'fixed'} | {r.rps:.0f} | {r.p50_ms:.2f} | "
        f"{r.p99_ms:.2f} | {r.p999_ms:.2f} |"
        for (name, random_waits), r in t.paced.items()
    )
    runtime = t.servers[RUNTIME]
    answered = runtime.requests + t.warm_up_requests
    return f"""Load: `wrk -t1 -c{args.connections} -d{args.seconds:g}s` with the Lua script of
`benchmarks/load.py`, each request `POST /v1/sessions/s<n>/messages {{"content": "hello
there"}}` for `n` cycling through 1..1000 (so sessions grow by a turn each time round, and
each turn sends its session's history to the builtin model), over loopback, on the same
machine. The three servers run side by side, warmed up for 2 s each, then loaded in turn,
{args.rounds} rounds; the load average is the 1-minute figure at the start of the round
({t.loads[-1]:.1f} at the end).

| {header} | runtime / bare | runtime / bare (uvloop, orjson) |
{rows[rows.index(chr(10)) + 1 :]}

| figure | min / median / max | target |
|---|---|---|
| runtime / bare aiohttp handler | {spread(t.ratios(BARE))} | ≥ 0.5 (aim 0.7) |
| runtime / bare handler on uvloop with orjson | {spread(t.ratios(BARE_FAST))} | — |

| server | req/s min / median / max | p50 ms | p99 ms | failed | requests per CPU-second |
|---|---|---|---|---|---|
{latency}

p50 and p99 are the median round's; failed counts non-2xx replies and socket errors.
Requests per CPU-second: requests answered over the user + system CPU time of the server
process (all its threads) during its runs. The runtime serves from one event loop, so
one replica uses about one core at most; for a fleet, plan on that many requests per
second per core of CPU request, less the headroom you keep.

Latency at half saturation: paced at {t.rate:.0f} requests/s (half the runtime's median
rate above), {args.connections} connections each waiting
{args.connections / t.rate * 1000:.0f} ms between requests, {args.seconds:g} s (wrk is
closed-loop: a slow reply delays its connection's next request, so p99 is a lower bound).
Two ways: every wait exactly that long (*fixed*), and waits drawn at random with that
mean (*random*: exponential, so requests arrive as from independent clients). With fixed
waits the connections tend to move in step: a batch of turns acknowledged by one fsync
goes back to wait together and comes back together, to queue behind the whole burst (up
to {args.connections} times the CPU of one request). Random waits do not keep them in step,
but bunch by chance. The target is judged by the higher of the two p99s.

| server | waits | achieved req/s | p50 ms | p99 ms | p99.9 ms |
|---|---|---|---|---|---|
{paced}

Access log: {t.access_lines:,} lines for the session route, for {answered:,} requests
the runtime answered (warm-up and paced runs included; wrk counts only replies it read
before it stopped, so the lines may exceed it by the requests in flight then).
"""


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtime")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    http = await http_benchmark(args.seconds, args.connections, args.rounds)
    limiter_us = limiter_benchmark()
    checkpoint_ms = await checkpoint_benchmark()
    rss_mb = await rss_benchmark(args.sessions)
    total = time.perf_counter() - started
    body = f"""## Agent runtime

Command: `make bench` (`python -m benchmarks --seconds {args.seconds:g} --connections
{args.connections} --rounds {args.rounds} --sessions {args.sessions}`), {time.strftime("%Y-%m-%d")},
total {total:.0f} s.
{machine()}- shared: other work runs on the same 2 cores (see the load average of each round):
  compare the servers within a round, not rounds or runs

{render_throughput(http, args)}
| figure | result | target |
|---|---|---|
| rate limiter decision | {limiter_us:.2f} µs | < 5 µs |
| 1 MiB checkpoint (pvc, seal + write + fsync) | {checkpoint_ms:.1f} ms | < 20 ms + fsync |
| runtime RSS with {args.sessions:,} sessions | {rss_mb:.0f} MB | < 120 MB |
"""
    write_section("runtime-benchmark", body)
    print(body)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

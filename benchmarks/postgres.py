"""The postgres state backend against pvc, in one run, on one machine.

- Throughput: the bare aiohttp handler of the runtime section, the runtime on pvc and the
  runtime on postgres (a local PostgreSQL server from the OS packages), all running,
  both runtimes at production settings, loaded in turn by ``wrk`` (``benchmarks/load.py``,
  the load of the runtime section) over several rounds; each round gives the ratios
  postgres / pvc (target ≥ 0.8) and postgres / bare (target ≥ 0.5, issue 13).
- p99 at half saturation: wrk paced at half the postgres median rate just measured.
- RSS: 100,000 sessions written to the database (sealed rows, as the runtime writes
  them, loaded with COPY), then 1,000 of them made hot through the API (each read back
  and given a turn); the runtime's RSS after that (target < 150 MB).

``python -m benchmarks.postgres`` (also run by ``python -m benchmarks`` when the server
binaries are installed). Results go to the ``postgres-benchmark`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from agentry_cluster import postgres

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.state import ANONYMOUS_CLIENT, SessionKey
from agent_runtime.state.postgres.rows import TurnSeal
from benchmarks import load, runtime
from benchmarks.report import machine, write_section

WARM_UP_SECONDS = 3.0
"""Load before each measured run, the same for both backends: the sessions exist and the
pool's connections are open with their statements prepared, so the figure is the steady
state of turns on existing sessions rather than start-up."""

SESSION_COLUMNS = [
    "namespace",
    "agent",
    "client",
    "session",
    "turns",
    "bytes",
    "created_at",
    "updated_at",
]


@contextlib.asynccontextmanager
async def serving_postgres(
    url: str, keys: Path
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    with tempfile.TemporaryDirectory() as tmp:

        def env(port: int) -> dict[str, str]:
            values = runtime.runtime_env(port, Path(tmp), backend="postgres")
            values["AGENTRY_POSTGRES_URL"] = url
            values["AGENTRY_KEYS_DIR"] = str(keys)
            return values

        serve = ["-m", "agent_runtime", "serve"]
        async with runtime.serving(lambda _: serve, env, asyncio.subprocess.DEVNULL) as server:
            yield server


async def fill(url: str, keyring: KeyRing, sessions: int) -> None:
    """`sessions` sessions of one sealed turn each, written with COPY (as the runtime
    would have written them: same seal, same associated data)."""
    from agent_runtime.state.postgres.schema import migrate

    seal = TurnSeal(keyring, RecordContext("default", "agent", "", ""))
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url, server_settings={"search_path": "agentry"})
    try:
        await migrate(conn, "agentry", lock_timeout=30)  # type: ignore[arg-type]
        batch = 10_000
        for start in range(0, sessions, batch):
            numbers = range(start, min(start + batch, sessions))
            names = [f"s{i}" for i in numbers]
            await conn.copy_records_to_table(
                "sessions",
                records=[("default", "agent", ANONYMOUS_CLIENT, n, 1, 64, now, now) for n in names],
                columns=SESSION_COLUMNS,
            )
            ids = await conn.fetch(
                "SELECT id, session FROM sessions WHERE session = ANY($1::text[])", names
            )
            rows = []
            for record in ids:
                key = SessionKey(ANONYMOUS_CLIENT, record["session"])
                messages = (
                    {"role": "user", "content": f"hello from {key.session}", "at": now.isoformat()},
                    {"role": "assistant", "content": "hi", "at": now.isoformat()},
                )
                sealed = seal.seal(key, 1, messages)
                rows.append((record["id"], 1, keyring.active_key_id, sealed, now))
            await conn.copy_records_to_table(
                "turns",
                records=rows,
                columns=["session_id", "turn", "key_id", "sealed", "created_at"],
            )
    finally:
        await conn.close()


async def hot_rss(port: int, process: asyncio.subprocess.Process, hot: int) -> float:
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def touch(i: int) -> None:
            async with http.post(
                f"http://127.0.0.1:{port}/v1/sessions/s{i}/messages",
                json={"content": f"back in session {i}"},
            ) as response:
                body = await response.json()
                assert response.status == 200, body
                assert body["turn"] == 2, body

        for start in range(0, hot, 100):
            await asyncio.gather(*(touch(i) for i in range(start, start + 100)))
    status = await asyncio.to_thread(Path(f"/proc/{process.pid}/status").read_text)
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kb / 1024


def database_cpu_seconds(pgdata: Path) -> float:
    """User and system CPU time of the database server: the postmaster and every process
    it started (the backends serving the runtime's pool among them)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if postmaster in (int(entry.name), int(fields[1])):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Rounds:
    """Each server's runs, one per round, in the order measured, with the CPU seconds the
    server (and, for the postgres runtime, the database) used during each run."""

    runs: dict[str, list[load.Result]]
    loads: list[float]
    cpu: dict[str, list[float]] = field(default_factory=dict)
    database_cpu: list[float] = field(default_factory=list)

    def ratios(self, of: str, to: str) -> list[float]:
        return [a.rps / b.rps for a, b in zip(self.runs[of], self.runs[to], strict=True)]

    def median_run(self, name: str) -> load.Result:
        runs = sorted(self.runs[name], key=lambda r: r.rps)
        return runs[len(runs) // 2]

    def micros_per_turn(self, name: str) -> float:
        """The server's CPU per answered request over all its runs, in microseconds."""
        turns = sum(r.requests for r in self.runs[name])
        return 1e6 * sum(self.cpu[name]) / turns

    def database_micros_per_turn(self) -> float:
        turns = sum(r.requests for r in self.runs[POSTGRES])
        return 1e6 * sum(self.database_cpu) / turns


async def alternate(
    servers: dict[str, tuple[int, int]], pgdata: Path, args: argparse.Namespace
) -> Rounds:
    """Every server (name: (port, pid)) warmed up, then measured in turn, ``--rounds``
    times: on a machine whose load drifts (other work on the same cores), adjacent runs
    see the same load, so each round gives its own ratios."""
    for port, _ in servers.values():
        await load.wrk(port, seconds=WARM_UP_SECONDS, connections=args.connections)
    rounds = Rounds({name: [] for name in servers}, [], {name: [] for name in servers})
    for _ in range(args.rounds):
        rounds.loads.append(os.getloadavg()[0])
        for name, (port, pid) in servers.items():
            before, database_before = runtime.cpu_seconds(pid), database_cpu_seconds(pgdata)
            result = await load.wrk(port, seconds=args.seconds, connections=args.connections)
            rounds.cpu[name].append(runtime.cpu_seconds(pid) - before)
            if name == POSTGRES:
                rounds.database_cpu.append(database_cpu_seconds(pgdata) - database_before)
            rounds.runs[name].append(result)
    rounds.loads.append(os.getloadavg()[0])
    return rounds


@dataclass
class Spread:
    """Three runtimes on one database, loaded at once: each replica's wrk starts a third
    of the way further along the same sessions, so every session's turns move between
    replicas, as behind a Service."""

    rounds: list[float] = field(default_factory=list)  # total turns/s of each round
    conflicts: int = 0
    failed: int = 0


async def conflicts_of(port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("agentry_runtime_turn_conflicts_total "):
            return int(float(line.split()[1]))
    return 0


async def three_replicas(url: str, keys: Path, args: argparse.Namespace) -> Spread:
    spread = Spread()
    sessions, share = 1000, max(args.connections // REPLICAS, 1)
    async with contextlib.AsyncExitStack() as stack:
        ports = [(await stack.enter_async_context(serving_postgres(url, keys)))[0]]
        for _ in range(REPLICAS - 1):
            ports.append((await stack.enter_async_context(serving_postgres(url, keys)))[0])

        async def together(seconds: float) -> list[load.Result]:
            return await asyncio.gather(
                *(
                    load.wrk(
                        port,
                        seconds=seconds,
                        connections=share,
                        sessions=sessions,
                        first_session=1 + i * sessions // REPLICAS,
                    )
                    for i, port in enumerate(ports)
                )
            )

        await together(WARM_UP_SECONDS)
        for _ in range(args.rounds):
            results = await together(args.seconds)
            spread.rounds.append(sum(r.rps for r in results))
            spread.failed += sum(r.non_2xx + r.socket_errors for r in results)
        spread.conflicts = sum([await conflicts_of(port) for port in ports])
    return spread


REPLICAS = 3
PVC, POSTGRES, BARE = "runtime, pvc + journal", "runtime, postgres", "bare aiohttp handler"


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--hot", type=int, default=1000)
    args = parser.parse_args(argv)
    if reason := postgres.missing_reason():
        print(f"postgres benchmark skipped: {reason}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    scratch = tempfile.TemporaryDirectory(prefix="agentry-bench-keys-")
    keys = Path(scratch.name)
    keyring = KeyRing.generate_development(keys)
    bare_server = ["-c", runtime.BARE_SERVER]
    with scratch, postgres.temporary_server("agentry-bench-pg-") as server:
        version = server.psql("SHOW server_version").strip()
        url = server.createdb("throughput")
        async with (
            runtime.serving_runtime() as (pvc_port, pvc),
            serving_postgres(url, keys) as (pg_port, pg),
            runtime.serving(lambda port: [*bare_server, str(port)]) as (bare_port, bare),
        ):
            servers = {
                BARE: (bare_port, bare.pid),
                PVC: (pvc_port, pvc.pid),
                POSTGRES: (pg_port, pg.pid),
            }
            ports = {name: port for name, (port, _) in servers.items()}
            rounds = await alternate(servers, server.pgdata, args)
            rate = statistics.median(r.rps for r in rounds.runs[POSTGRES]) / 2
            half = await load.wrk(
                pg_port, seconds=args.seconds, connections=args.connections, rate=rate
            )
        spread = await three_replicas(server.createdb("replicas"), keys, args)
        url = server.createdb("rss")
        await fill(url, keyring, args.sessions)
        async with serving_postgres(url, keys) as (port, process):
            rss_mb = await hot_rss(port, process, args.hot)
    total = time.perf_counter() - started
    command = (
        f"python -m benchmarks.postgres --seconds {args.seconds:g} --connections "
        f"{args.connections} --rounds {args.rounds} --sessions {args.sessions} --hot {args.hot}"
    )

    def row(name: str, r: load.Result) -> str:
        return f"| {name} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |"

    rows = "\n".join(
        [
            *(row(name, rounds.median_run(name)) for name in ports),
            row(f"runtime, postgres, paced at half ({rate:.0f}/s)", half),
        ]
    )
    per_round = "\n".join(
        f"| {i + 1} | {rounds.loads[i]:.1f} | "
        + " | ".join(f"{rounds.runs[name][i].rps:.0f}" for name in ports)
        + f" | {rounds.ratios(POSTGRES, PVC)[i]:.2f} | {rounds.ratios(POSTGRES, BARE)[i]:.2f} |"
        for i in range(args.rounds)
    )
    rss_name = f"runtime RSS, {args.sessions:,} sessions in the database, {args.hot:,} hot"
    pvc_cpu, pg_cpu = rounds.micros_per_turn(PVC), rounds.micros_per_turn(POSTGRES)
    db_cpu = rounds.database_micros_per_turn()
    body = f"""## Postgres state backend

Command: `{command}` (also part of `make bench`), {time.strftime("%Y-%m-%d")},
total {total:.0f} s.
{machine()}- PostgreSQL {version} on the same machine (loopback, `fsync` on, default
  `synchronous_commit`), one runtime process, pool of 10; other work shares the 2 cores
  (the load average of each round is in the table, {rounds.loads[-1]:.1f} at the end): each
  turn's round trips wait for the database's process to be scheduled, so the postgres
  figure falls faster than pvc's as the load rises.

Throughput: `wrk` as in the runtime section (`benchmarks/load.py`, {args.connections}
connections, sessions s1..s1000, {args.seconds:g} s per server after a {WARM_UP_SECONDS:g} s
warm-up with the same load); the bare aiohttp handler, the runtime on pvc and the
runtime on postgres, both at production settings, measured in turn, {args.rounds} rounds.
Half saturation: wrk paced at half the postgres median rate, {args.seconds:g} s (closed
loop: p99 is a lower bound).

| round | load average | {" req/s | ".join(ports)} req/s | postgres / pvc | postgres / bare |
|---|---|---|---|---|---|---|
{per_round}

| server (median round) | requests/s | p50 ms | p99 ms |
|---|---|---|---|
{rows}

CPU per turn, over all rounds (user + system time from /proc; the database's is its
postmaster and every backend): what a pod's CPU request buys, whatever else shares the
machine. A pod on postgres spends its own CPU only; the database's runs elsewhere in a
real cluster, here on the same two cores.

| server | CPU per turn | turns per CPU-second |
|---|---|---|
| runtime, pvc + journal | {pvc_cpu:.0f} µs | {1e6 / pvc_cpu:.0f} |
| runtime, postgres | {pg_cpu:.0f} µs | {1e6 / pg_cpu:.0f} |
| the database, for those turns | {db_cpu:.0f} µs | {1e6 / db_cpu:.0f} |

| figure | min / median / max | target |
|---|---|---|
| postgres / pvc throughput (one replica) | {runtime.spread(rounds.ratios(POSTGRES, PVC))} | ≥ 0.8 |
| postgres / pvc turns per runtime CPU-second | {pvc_cpu / pg_cpu:.2f} | |
| postgres / bare aiohttp handler | {runtime.spread(rounds.ratios(POSTGRES, BARE))} | ≥ 0.5 |
| postgres, {REPLICAS} replicas at once: turns/s of all | {runtime.spread(spread.rounds, 0)} | |
| p99 of a turn at half saturation | {half.p99_ms:.1f} ms | < 10 ms |
| {rss_name} | {rss_mb:.0f} MB | < 150 MB |

{REPLICAS} replicas: {REPLICAS} runtimes on one database, each loaded by its own `wrk` with
{max(args.connections // REPLICAS, 1)} connections, all at once, {args.rounds} rounds of
{args.seconds:g} s. Each replica's load starts a third of the way further along the same
1,000 sessions, so each session's turns move between replicas as behind a Service.
Turns asked again after a conflict (`agentry_runtime_turn_conflicts_total`, all
replicas): {spread.conflicts}; requests not answered 200: {spread.failed}. On two cores
the three runtimes, their load generators and the database share the same CPU: this
figure shows what spreading sessions over replicas costs in conflicts and failures, not
how throughput scales with cores.
"""
    write_section("postgres-benchmark", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

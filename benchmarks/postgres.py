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
from dataclasses import dataclass
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


@dataclass
class Rounds:
    """Each server's runs, one per round, in the order measured."""

    runs: dict[str, list[load.Result]]
    loads: list[float]

    def ratios(self, of: str, to: str) -> list[float]:
        return [a.rps / b.rps for a, b in zip(self.runs[of], self.runs[to], strict=True)]

    def median_run(self, name: str) -> load.Result:
        runs = sorted(self.runs[name], key=lambda r: r.rps)
        return runs[len(runs) // 2]


async def alternate(ports: dict[str, int], args: argparse.Namespace) -> Rounds:
    """Every server warmed up, then measured in turn, ``--rounds`` times: on a machine
    whose load drifts (other work on the same cores), adjacent runs see the same load, so
    each round gives its own ratios."""
    for port in ports.values():
        await load.wrk(port, seconds=WARM_UP_SECONDS, connections=args.connections)
    rounds = Rounds({name: [] for name in ports}, [])
    for _ in range(args.rounds):
        rounds.loads.append(os.getloadavg()[0])
        for name, port in ports.items():
            rounds.runs[name].append(
                await load.wrk(port, seconds=args.seconds, connections=args.connections)
            )
    rounds.loads.append(os.getloadavg()[0])
    return rounds


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
            runtime.serving_runtime() as (pvc_port, _),
            serving_postgres(url, keys) as (pg_port, _),
            runtime.serving(lambda port: [*bare_server, str(port)]) as (bare_port, _),
        ):
            ports = {BARE: bare_port, PVC: pvc_port, POSTGRES: pg_port}
            rounds = await alternate(ports, args)
            rate = statistics.median(r.rps for r in rounds.runs[POSTGRES]) / 2
            half = await load.wrk(
                pg_port, seconds=args.seconds, connections=args.connections, rate=rate
            )
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

| figure | min / median / max | target |
|---|---|---|
| postgres / pvc throughput (one replica) | {runtime.spread(rounds.ratios(POSTGRES, PVC))} | ≥ 0.8 |
| postgres / bare aiohttp handler | {runtime.spread(rounds.ratios(POSTGRES, BARE))} | ≥ 0.5 |
| p99 of a turn at half saturation | {half.p99_ms:.1f} ms | < 10 ms |
| {rss_name} | {rss_mb:.0f} MB | < 150 MB |
"""
    write_section("postgres-benchmark", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

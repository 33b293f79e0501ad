"""What one agent pod uses: the runtime's RSS and CPU at idle and under the benchmark load,
and the bytes it writes to its ephemeral storage (its /tmp and its log stream).

The operator's resource defaults (operator/agentry_operator/builders/resources.py) are
sized from these figures, so they are measured on the real process rather than guessed:
the runtime runs as it does in a pod (``agentry-runtime serve`` at production settings,
pvc backend and journal, log level info so every request writes its log line), loaded by
``wrk`` (``benchmarks/load.py``), with ``TMPDIR`` and the log stream
captured to count the bytes. Results go to the ``runtime-footprint`` section of
docs/benchmarks.md. ``python -m benchmarks.footprint --idle-seconds 30 --load-seconds 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import wrk
from benchmarks.report import machine, write_section
from benchmarks.runtime import free_port, runtime_env, wait_ready

OPTIONS = (("--idle-seconds", 30.0), ("--load-seconds", 20.0), ("--workers", 16))


@dataclass(frozen=True)
class Sample:
    """RSS now, the peak so far, and CPU cores used over a window."""

    rss_mib: float
    peak_mib: float
    cores: float


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def measure(pid: int, during: asyncio.Future[object] | float) -> Sample:
    """CPU over `during` (seconds of idling, or a task to wait for), then RSS and peak."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    if isinstance(during, float):
        await asyncio.sleep(during)
    else:
        await during
    cores = (cpu_seconds(pid) - cpu) / (time.perf_counter() - started)
    return Sample(_status_kib(pid, "VmRSS") / 1024, _status_kib(pid, "VmHWM") / 1024, cores)


@dataclass(frozen=True)
class Footprint:
    idle: Sample
    loaded: Sample
    requests: int
    rps: float
    tmp_bytes: int
    log_bytes: int


async def run(idle_seconds: float, load_seconds: float, workers: int) -> Footprint:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "tmp").mkdir()
        port = free_port()
        env = runtime_env(port, root) | {
            "AGENTRY_LOG_LEVEL": "info",
            "AGENTRY_LOG_DIR": str(root / "tmp"),
            "TMPDIR": str(root / "tmp"),
        }
        with (root / "log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent_runtime", "serve", env=env, stdout=log, stderr=log
            )
            try:
                await wait_ready(port)
                idle = await measure(process.pid, idle_seconds)
                task = asyncio.ensure_future(wrk(port, seconds=load_seconds, connections=workers))
                loaded = await measure(process.pid, task)
                result = task.result()
            finally:
                process.terminate()
                await process.wait()
        return Footprint(
            idle,
            loaded,
            result.requests,
            result.rps,
            du_bytes(root / "tmp"),
            (root / "log").stat().st_size,
        )


def render(args: argparse.Namespace, fp: Footprint, total: float) -> str:
    per_request = fp.log_bytes / max(fp.requests, 1)
    return f"""## Agent pod footprint (what the resource defaults are sized from)

Command: `python -m benchmarks.footprint --idle-seconds {args.idle_seconds:g} --load-seconds
{args.load_seconds:g} --workers {args.workers}` (also run by `make bench`),
{time.strftime("%Y-%m-%d")}, total {total:.0f} s.
{machine()}
One `agentry-runtime serve` process at production settings (builtin model, pvc backend with
its journal, log level info), idle for {args.idle_seconds:g} s after it is ready, then
`wrk` with {args.workers} connections for {args.load_seconds:g} s on loopback (the runtime
benchmark's load). CPU is user + system time over wall time; RSS from /proc (VmRSS,
VmHWM for the peak).

| phase | RSS | peak RSS | CPU |
|---|---|---|---|
| idle | {fp.idle.rss_mib:.0f} MiB | {fp.idle.peak_mib:.0f} MiB | {fp.idle.cores * 1000:.0f}m |
| under load ({fp.rps:.0f} requests/s) | {fp.loaded.rss_mib:.0f} MiB \
| {fp.loaded.peak_mib:.0f} MiB | {fp.loaded.cores * 1000:.0f}m |

| ephemeral storage written | bytes |
|---|---|
| /tmp (TMPDIR, AGENTRY_LOG_DIR) after {fp.requests:,} requests | {fp.tmp_bytes:,} |
| log stream (stdout + stderr) | {fp.log_bytes:,} ({per_request:.0f} per request) |
"""


async def main(argv: list[str]) -> Footprint:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.footprint")
    for flag, default in OPTIONS:
        parser.add_argument(flag, type=type(default), default=default)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    fp = await run(args.idle_seconds, args.load_seconds, args.workers)
    body = render(args, fp, time.perf_counter() - started)
    write_section("runtime-footprint", body)
    print(body)
    return fp


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

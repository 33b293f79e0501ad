"""The runtime as a real process (`python -m agent_runtime serve`) on a free loopback port.

Used by the process tests (signals, kill -9) and by the fault-injection suite, which
needs what an in-process test client hides: sockets, file descriptors, RSS and a disk
that really fills up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """A development runtime on 127.0.0.1:`port`, pvc state under `tmp_path`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(
        {
            "AGENTRY_HOST": "127.0.0.1",
            "AGENTRY_PORT": str(port),
            "AGENTRY_STATE_BACKEND": "pvc",
            "AGENTRY_STATE_DIR": str(tmp_path / "state"),
            "AGENTRY_LOG_DIR": str(tmp_path),
            "AGENTRY_HEARTBEAT": "none",
            "AGENTRY_LOG_LEVEL": "info",
            "AGENTRY_SHUTDOWN_GRACE_SECONDS": "15",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def base_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['AGENTRY_PORT']}"


async def wait_until(condition: Callable[[], object], seconds: float = 20.0) -> None:
    """Poll `condition` (a function or coroutine function) until it returns truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`agent_runtime serve` as a process with `env`; its stderr piped, stdout discarded."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_runtime",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def runtime(
    env: dict[str, str], *, startup_seconds: float = 20.0
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The runtime started with `env`, once /readyz answers 200; killed on exit."""
    process = await spawn(env)
    base = base_url(env)
    # The pipe is drained all along: a chatty runtime must not block on a full pipe.
    stderr = asyncio.create_task(_drain(process))
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                if process.returncode is not None:
                    raise AssertionError("runtime exited during startup")
                try:
                    async with http.get(f"{base}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(ready, startup_seconds)
        yield process
    finally:  # a runtime too slow to start is stopped too, not left behind
        if process.returncode is None:
            process.kill()
            await process.wait()
        await stderr


@dataclass(frozen=True)
class Started:
    """A runtime process of `scenario_runtime`, where its clients reach it."""

    process: asyncio.subprocess.Process
    base: str
    port: int


@asynccontextmanager
async def scenario_runtime(tmp_path: Path, **extra: str) -> AsyncIterator[Started]:
    """The runtime of a fault scenario: `environment()` on a free port with `extra`,
    logging warnings only (a scenario's thousands of turns would otherwise spend the CPU
    it measures on access lines), once ready; killed on exit."""
    port = free_port()
    env = environment(tmp_path, port, **{"AGENTRY_LOG_LEVEL": "warning", **extra})
    async with runtime(env) as process:
        yield Started(process, base_url(env), port)


async def _drain(process: asyncio.subprocess.Process) -> bytes:
    assert process.stderr is not None
    return await process.stderr.read()


def open_sockets(pid: int) -> int:
    """Sockets the process holds (listeners, clients' connections and its own)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while listed
            count += os.readlink(fd).startswith("socket:")
    return count

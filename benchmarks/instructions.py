"""Instructions per request on the runtime's request path, counted by callgrind.

Requests per second on a shared 2-core machine move by 20 % from one run to the next,
so a change of a few per cent to the request path cannot be seen in them. The number of
instructions the event loop's thread executes per request can: under callgrind it is the
same within 1 % from run to run, whatever else the machine is doing.

What is counted: the runtime's aiohttp application at production settings (the
environment ``benchmarks.runtime`` gives a pod: pvc backend with its journal, encrypted,
limiter on, access log at info), handling ``POST /v1/sessions/s<n>/messages`` requests
made in the process, 32 at a time, on sessions that already hold two turns: routing, the
middleware, the handler, the turn and the journal, up to the response object. Not
counted: parsing the request and writing the response on a socket (aiohttp's protocol,
the same for any server), and the writer threads (the fsync and the log line's write).
The reference, counted the same way, is the bare orjson handler of ``benchmarks.runtime``
in an application of its own, both on asyncio's own loop; the ratio of the two is what
the runtime's own code costs.

``python -m benchmarks.instructions`` (valgrind from the OS packages; ``make
bench-tools`` installs it) prints both and writes the ``runtime-instructions`` section of
docs/benchmarks.md. About a minute and a half.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request

from benchmarks.report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32  # requests in flight together, as wrk's connections
HISTORY_TURNS = 2  # turns each session holds before counting starts
SESSIONS = 1000
BODY = b'{"content": "hello there"}'
SERVERS = ("runtime", "bare")


class _Transport:
    """What aiohttp asks of a transport while it handles a request (no socket)."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


class _Protocol:
    """What aiohttp asks of a connection's protocol while it handles a request."""

    transport = _Transport()
    ssl_context = None
    peername = ("127.0.0.1", 5555)
    sockname = ("127.0.0.1", 8080)

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        return None

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> None:
        return None


async def _bare_handler(request: web.Request) -> web.Response:
    import orjson

    body = orjson.loads(await request.read())
    reply = {"reply": body["content"], "degraded": False, "turn": 1}
    return web.Response(body=orjson.dumps(reply), content_type="application/json")


def _request(app: web.Application, number: int) -> web.Request:
    protocol: Any = _Protocol()
    payload = streams.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(BODY)
    payload.feed_eof()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(BODY))}
    return make_mocked_request(
        "POST",
        f"/v1/sessions/s{number % SESSIONS + 1}/messages",
        headers={**headers, "Host": "bench"},
        payload=payload,
        app=app,
        protocol=protocol,
        transport=protocol.transport,
    )


async def _handle(app: web.Application, request: web.Request) -> None:
    match = await app.router.resolve(request)
    match.add_app(app)
    match.freeze()
    request._match_info = match
    response = await app._handle(request)
    if response.status != 200:
        raise RuntimeError(f"the {request.path} request got {response.status}")


async def _serve(app: web.Application, first: int, count: int, before: Callable[[], None]) -> None:
    """Handle `count` requests, made first, `BATCH` at a time; `before` runs after making."""
    requests = [_request(app, n) for n in range(first, first + count)]
    before()
    for start in range(0, count, BATCH):
        await asyncio.gather(*(_handle(app, r) for r in requests[start : start + BATCH]))


async def _runtime_app(
    state: Path, log: IO[str]
) -> tuple[web.Application, Callable[[], Awaitable[None]]]:
    from benchmarks.runtime import runtime_env

    os.environ.update(runtime_env(8080, state))
    from agent_runtime.app import create_app
    from agent_runtime.config import Settings
    from agent_runtime.logs import configure_logging

    configure_logging(agent="bench", replica="bench-0", level="info", stream=log)
    app = create_app(Settings())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return app, runner.cleanup


async def _bare_app(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = _bare_handler,
) -> tuple[web.Application, Callable[[], Awaitable[None]]]:
    app = web.Application()
    app.router.add_post("/v1/sessions/{id}/messages", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return app, runner.cleanup


def _callgrind(command: str) -> None:
    subprocess.run(
        ["callgrind_control", command, str(os.getpid())], check=True, capture_output=True
    )


async def child(server: str, requests: int) -> None:
    """Under callgrind: warm up, then count `requests` requests (instrumentation on)."""
    from agent_runtime.collector import settle_for_serving

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as log:  # noqa: ASYNC230
        app, cleanup = await (_runtime_app(Path(tmp), log) if server == "runtime" else _bare_app())
        await _serve(app, 0, HISTORY_TURNS * SESSIONS, lambda: None)
        settle_for_serving()  # as the runtime does once its port is open
        await _serve(app, 0, requests, lambda: _callgrind("--instr=on"))
        _callgrind("--dump")
        _callgrind("--instr=off")
        await cleanup()


def count(server: str, requests: int) -> int:
    """Instructions per request of the event loop's thread, `server` under callgrind."""
    with tempfile.TemporaryDirectory(prefix="agentry-callgrind-") as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.instructions",
                "--child",
                server,
                "--requests",
                str(requests),
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        dumped = Path(f"{out}.1-01")  # the first dump (--dump), of thread 1: the loop's
        for line in dumped.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1]) // requests
    raise RuntimeError(f"callgrind wrote no totals for {server}")


def render(counts: dict[str, int], requests: int) -> str:
    runtime, bare = counts["runtime"], counts["bare"]
    return f"""## Instructions per request (callgrind)

Command: `python -m benchmarks.instructions --requests {requests}` (valgrind's callgrind).
{machine()}

The event loop thread's instructions per request, counted by callgrind: within 1 % from
run to run, whatever else runs on the machine, so a change of
a few per cent to the request path shows here when the req/s figures above cannot show
it. Requests are made in the process, {BATCH} at a time, on sessions of {HISTORY_TURNS}
turns: routing, middleware, handler, turn and journal are counted; reading the request
from a socket and writing the response are not (the same for both), nor the writer
threads (fsync, log lines). The bare handler is the uvloop and orjson one of the
throughput table, in an application of its own; both run on asyncio's own event loop
here (the runtime serves on uvloop), so only their own code differs.

| server | instructions per request |
|---|---|
| runtime (production settings) | {runtime:,} |
| bare aiohttp handler (orjson) | {bare:,} |
| runtime / bare | {runtime / bare:.2f} |
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=640, help="requests counted (640)")
    parser.add_argument("--child", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(args.child, args.requests))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed: run make bench-tools", file=sys.stderr)
        return 1
    counts = {server: count(server, args.requests) for server in SERVERS}
    text = render(counts, args.requests)
    print(text)
    if not args.no_write:
        write_section("runtime-instructions", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

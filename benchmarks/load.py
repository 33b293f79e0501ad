"""HTTP load for every benchmark: ``wrk``, an external load generator written in C.

A load generator in Python shares the machine's cores with the server it measures and
spends more CPU per request than a lean server does, so it measured itself as much as
the server (docs/benchmarks.md, before issue 13). ``wrk`` (Debian's package, installed
by ``make bench-tools``, which ``make bench`` runs) sends the requests;
the Lua script below makes them turns of sessions and prints the result as JSON.

One shape, parameterised: ``connections`` keep-alive connections on one ``wrk`` thread
for ``seconds``, each request a turn of session ``<prefix><n>`` for ``n`` cycling through
``1..sessions``, either the native ``POST /v1/sessions/{id}/messages {"content": ...}``
or ``POST /v1/chat/completions`` with ``X-Session-ID``. ``rate`` paces the connections:
each waits ``connections / rate`` seconds before its next request (always that long, or
an exponentially distributed wait of that mean), so the offered load is at most ``rate``
(wrk has no open-loop mode; the achieved rate is reported, and a slow reply delays its
connection's next request rather than piling up requests).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

REQUEST_TIMEOUT_SECONDS = 10
"""wrk's own default (2 s) would abandon a slow reply and send another request on a new
connection while the first is still in flight, which a loaded machine turns into 429s."""

SCRIPT = r"""
local prefix, sessions, mode = "s", 1000, "native"
local n = 0
function init(args)
  prefix = args[1]
  sessions = tonumber(args[2])
  mode = args[3]
  n = tonumber(args[4] or "0")
end
function request()
  n = n + 1
  local session = prefix .. ((n - 1) % sessions + 1)
  if mode == "chat" then
    return wrk.format("POST", "/v1/chat/completions",
      {["Content-Type"] = "application/json", ["X-Session-ID"] = session},
      '{"model":"agent","messages":[{"role":"user","content":"hello there"}]}')
  end
  return wrk.format("POST", "/v1/sessions/" .. session .. "/messages",
    {["Content-Type"] = "application/json"}, '{"content": "hello there"}')
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""

PACING = """
function delay() return {delay_ms} end
"""
"""Added for a paced run only: wrk arms a timer before every request of a script that
defines ``delay``, which would cost the unpaced runs throughput."""

RANDOM_PACING = """
function delay() return math.floor(-math.log(1 - math.random()) * {delay_ms} + 0.5) end
"""
"""Paced with random waits (exponential, the same mean): independent clients, whose
requests arrive as a Poisson process. With fixed waits the connections move in step: a
server that answers a burst together (a group commit acknowledges a batch at once) sends
them all back to wait the same time, so every request meets the whole burst in the queue
again. Real clients' think times differ; wrk's fixed pacing never lets them."""


class WrkMissing(RuntimeError):
    """``wrk`` is not on PATH."""


@dataclass(frozen=True)
class Result:
    """One wrk run: completed requests, their rate and latency, and what failed."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(
            "wrk is not installed: run make bench-tools (make bench does), or install the "
            "wrk package"
        )
    return path


async def wrk(
    port: int,
    *,
    seconds: float,
    connections: int = 32,
    sessions: int = 1000,
    prefix: str = "s",
    chat: bool = False,
    rate: float | None = None,
    random_waits: bool = False,
    first_session: int = 1,
) -> Result:
    """Run wrk against ``127.0.0.1:port`` once (module docstring) and parse its result.
    Sessions are taken in turn from ``first_session``, wrapping after ``sessions``;
    ``random_waits`` paces with exponential waits of the same mean (``RANDOM_PACING``)."""
    delay_ms = 0 if rate is None else max(1, round(connections / rate * 1000))
    pacing = "" if rate is None else (RANDOM_PACING if random_waits else PACING)
    with tempfile.TemporaryDirectory(prefix="agentry-wrk-") as tmp:
        script = Path(tmp) / "turns.lua"
        script.write_text(SCRIPT + pacing.format(delay_ms=delay_ms))
        process = await asyncio.create_subprocess_exec(
            wrk_path(),
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={REQUEST_TIMEOUT_SECONDS}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            prefix,
            str(sessions),
            "chat" if chat else "native",
            str(first_session - 1),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode().strip()}")
    line = next(line for line in reversed(out.decode().splitlines()) if line.startswith("{"))
    data = json.loads(line)
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        p999_ms=data["p999_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
    )

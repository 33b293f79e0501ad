"""Protocol surface benchmarks (issue 9): time to first byte the runtime adds when
streaming, and the throughput of ``/v1/chat/completions`` against
``/v1/sessions/{id}/messages``.

TTFB: a streaming OpenAI-compatible mock (its own process) answers every
``stream: true`` call with 20 chunks at once. One client, one request at a time, asks
the mock directly, then the runtime (openai provider pointed at the mock) on
``/v1/chat/completions`` with ``stream: true`` and on the native ``?stream=true``; the
time is from sending the request to the first SSE ``data:`` line. The runtime's added
TTFB is its p50 and p99 minus the mock's.

Throughput: one runtime at production settings (builtin model, pvc + journal, limiter
on) loaded by ``wrk`` (``benchmarks/load.py``, 16 connections, the same for both
surfaces, in the same run): session turns through ``/v1/chat/completions`` with
``X-Session-ID``, then through ``/v1/sessions/{id}/messages``.
``python -m benchmarks.protocols [--seconds 5]`` writes the ``protocols-benchmark``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load import Result, wrk
from benchmarks.report import machine, write_section
from benchmarks.runtime import runtime_env, serving

MOCK = """
import json, sys
from aiohttp import web
CHUNK = {"id": "c", "object": "chat.completion.chunk",
         "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
async def chat(request):
    body = await request.json()
    if not body.get("stream"):
        return web.json_response({"choices": [{"message": {"content": "word"}}]})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for _ in range(20):
        await response.write(b"data: " + json.dumps(CHUNK).encode() + b"\\n\\n")
    await response.write(b"data: [DONE]\\n\\n")
    await response.write_eof()
    return response
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
app.router.add_get("/v1/models", lambda r: web.json_response({"data": []}))
app.router.add_get("/readyz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

TTFB = """
import asyncio, json, sys, time, aiohttp
async def main(targets, count):
    out = {}
    async with aiohttp.ClientSession() as http:
        for name, url, body in targets:
            times = []
            for i in range(count):
                payload = json.loads(json.dumps(body).replace("SESSION", f"s{i}"))
                started = time.perf_counter()
                async with http.post(url, json=payload) as r:
                    assert r.status == 200, r.status
                    async for line in r.content:
                        if line.startswith(b"data:"):
                            times.append(time.perf_counter() - started)
                            break
                    await r.read()
            out[name] = times
    print(json.dumps(out))
asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2])))
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


async def run_script(script: str, *args: str) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    result: dict[str, object] = json.loads(out)
    return result


async def ttfb(count: int) -> dict[str, dict[str, float]]:
    async with serving(lambda port: ["-c", MOCK, str(port)]) as (mock, _):
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "key"
            key.write_text("sk-bench\n")

            def env(port: int) -> dict[str, str]:
                values = runtime_env(port, Path(tmp), backend="memory")
                values.update(
                    {
                        "AGENTRY_MODEL_PROVIDER": "openai",
                        "AGENTRY_MODEL_ENDPOINT": f"http://127.0.0.1:{mock}/v1",
                        "AGENTRY_MODEL_NAME": "m",
                        "AGENTRY_MODEL_API_KEY_FILE": str(key),
                    }
                )
                return values

            serve = ["-m", "agent_runtime", "serve"]
            async with serving(lambda _: serve, env, asyncio.subprocess.DEVNULL) as (port, _):
                messages = [{"role": "user", "content": "hello"}]
                chat = {"model": "m", "stream": True, "messages": messages}
                targets = [
                    ("mock directly", f"http://127.0.0.1:{mock}/v1/chat/completions", chat),
                    (
                        "runtime /v1/chat/completions",
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        chat,
                    ),
                    (
                        "runtime /v1/sessions/{id}/messages?stream=true",
                        f"http://127.0.0.1:{port}/v1/sessions/SESSION/messages?stream=true",
                        {"content": "hello"},
                    ),
                ]
                raw = await run_script(TTFB, json.dumps(targets), str(count))
    return {
        name: {"p50_ms": percentile(times, 0.5), "p99_ms": percentile(times, 0.99)}  # type: ignore[arg-type]
        for name, times in raw.items()
    }


async def throughput(seconds: float, connections: int) -> dict[str, dict[str, float]]:
    """Session turns on each surface, in interleaved halves (chat, native, native, chat),
    so that a change in the machine's load hits both."""
    with tempfile.TemporaryDirectory() as tmp:
        serve = ["-m", "agent_runtime", "serve"]
        env = lambda port: runtime_env(port, Path(tmp))  # noqa: E731
        async with serving(lambda _: serve, env, asyncio.subprocess.DEVNULL) as (port, _):
            runs: dict[str, list[Result]] = {"chat": [], "native": []}
            for surface in ("chat", "native", "native", "chat"):
                runs[surface].append(
                    await wrk(
                        port,
                        seconds=seconds / 2,
                        connections=connections,
                        prefix=surface[0],
                        chat=surface == "chat",
                    )
                )
    return {
        surface: {
            "rps": sum(r.requests for r in halves) / sum(r.seconds for r in halves),
            "p50_ms": max(r.p50_ms for r in halves),
            "p99_ms": max(r.p99_ms for r in halves),
        }
        for surface, halves in runs.items()
    }


def render(
    first: dict[str, dict[str, float]],
    load: dict[str, dict[str, float]],
    args: argparse.Namespace,
    total: float,
) -> str:
    base = first["mock directly"]
    lines = [
        "## Protocol surfaces",
        "",
        f"Command: `python -m benchmarks.protocols --seconds {args.seconds:g} --requests "
        f"{args.requests}`, {time.strftime('%Y-%m-%d')}, total {total:.0f} s.",
        machine().rstrip(),
        f"- load average at the end: {os.getloadavg()[0]:.1f} (the machine is shared: "
        "compare the rows of one run, not runs)",
        "",
        f"Time to first SSE `data:` line, one client, {args.requests} sequential requests "
        "each, a local streaming mock (20 chunks) behind the openai provider:",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, figures in first.items():
        added = (figures["p50_ms"] - base["p50_ms"], figures["p99_ms"] - base["p99_ms"])
        shown = (f"{added[0]:.2f}", f"{added[1]:.2f}")
        if name == "mock directly":
            shown = ("—", "—")
        p50, p99 = f"{figures['p50_ms']:.2f}", f"{figures['p99_ms']:.2f}"
        lines.append(f"| {name} | {p50} | {p99} | {shown[0]} | {shown[1]} |")
    lines += [
        "",
        "Session turns over loopback, production settings (builtin model, pvc + journal, "
        f"limiter on); `wrk` with {args.workers} connections, {args.seconds:g} s per surface "
        "in interleaved halves, same run (p50 and p99: the higher of the two halves):",
        "",
        "| surface | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    names = {
        "chat": "`/v1/chat/completions` + `X-Session-ID`",
        "native": "`/v1/sessions/{id}/messages`",
    }
    for key, figures in load.items():
        p50, p99 = f"{figures['p50_ms']:.2f}", f"{figures['p99_ms']:.2f}"
        lines.append(f"| {names[key]} | {figures['rps']:.0f} | {p50} | {p99} |")
    ratio = load["chat"]["rps"] / load["native"]["rps"]
    lines += ["", f"chat completions / native throughput: {ratio:.2f}"]
    return "\n".join(lines) + "\n"


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.protocols")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    first = await ttfb(args.requests)
    load = await throughput(args.seconds, args.workers)
    body = render(first, load, args, time.perf_counter() - started)
    write_section("protocols-benchmark", body)
    print(body)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

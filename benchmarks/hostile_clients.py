"""The review's hostile-client load shapes against a real runtime process (issue 16).

Two figures, each from a fresh ``agentry-runtime serve`` (pvc backend, development):

- poison rounds, default settings: 30 rounds of 5 innocent turns next to 2 posts of a
  lone surrogate (``{"content": "\\ud800"}``); how many innocent turns were not 200;
- trickling sockets, ``MAX_CONCURRENT=8``: 8 connections each send a POST's headers, then
  its body one byte every 2 s for 14 s, while another client posts every 0.2 s; how that
  client's requests were answered.

``--source DIR`` runs the ``agent_runtime`` found in DIR, to compare with the code before
the fixes, for example::

    mkdir -p /tmp/before && git archive a2ce581 agent_runtime | tar -x -C /tmp/before
    .venv/bin/python -m benchmarks.hostile_clients --source /tmp/before
    .venv/bin/python -m benchmarks.hostile_clients

Prints one JSON object; about 20 s. Not part of ``make bench``: it measures defects, not
performance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from benchmarks.runtime import ROOT, runtime_env, serving

POISON = b'{"content": "\\ud800"}'
INNOCENT = b'{"content": "an innocent turn"}'
TRICKLE_SECONDS = 14.0


@asynccontextmanager
async def runtime(source: Path, **settings: str) -> AsyncIterator[str]:
    """The base URL of a runtime from ``source`` with ``AGENTRY_<settings>``, stopped on exit."""
    with tempfile.TemporaryDirectory() as tmp:

        def env(port: int) -> dict[str, str]:
            values = runtime_env(port, Path(tmp))
            values.update({f"AGENTRY_{k.upper()}": v for k, v in settings.items()})
            values.update({"PYTHONPATH": str(source), "AGENTRY_LOG_LEVEL": "error"})
            return values

        # -P: the working directory must not shadow ``source`` on sys.path.
        serve = ["-P", "-m", "agent_runtime", "serve"]
        async with serving(lambda _: serve, env) as (port, _):
            yield f"http://127.0.0.1:{port}"


async def poison_rounds(base: str, rounds: int = 30) -> Counter[int]:
    """Statuses of the innocent turns of ``rounds`` rounds of 5 innocent and 2 poison posts."""
    statuses: Counter[int] = Counter()
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:

        async def post(session: str, body: bytes) -> int:
            url = f"{base}/v1/sessions/{session}/messages"
            async with http.post(url, data=body, headers=headers) as response:
                return response.status

        for _ in range(rounds):
            answers = await asyncio.gather(
                *(post(f"innocent-{i}", INNOCENT) for i in range(5)),
                *(post(f"poison-{i}", POISON) for i in range(2)),
            )
            statuses.update(answers[:5])
    return statuses


async def trickle(base: str, index: int) -> str:
    """One connection sending a body of 1,000 bytes at a byte every 2 s; the answer it got."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /v1/sessions/slow-{index}/messages HTTP/1.1\r\nHost: agent\r\n"
        f"X-Client-ID: slow-{index}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n".encode()
    )
    answer = asyncio.ensure_future(reader.readline())
    stop = time.monotonic() + TRICKLE_SECONDS
    try:
        while time.monotonic() < stop and not answer.done():
            writer.write(b" ")
            await writer.drain()
            await asyncio.wait({answer}, timeout=2)
    except ConnectionError:
        pass
    writer.close()
    if not answer.done():
        answer.cancel()
        return "no answer"
    return " ".join(answer.result().decode().split()[1:2]) or "connection closed"


async def beside_tricklers(base: str) -> tuple[Counter[int], Counter[str]]:
    """Another client's statuses, posting every 0.2 s beside 8 trickling sockets, and the
    tricklers' answers."""
    tricklers = [asyncio.create_task(trickle(base, i)) for i in range(8)]
    await asyncio.sleep(0.5)
    statuses: Counter[int] = Counter()
    stop = time.monotonic() + TRICKLE_SECONDS - 1
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < stop:
            url = f"{base}/v1/sessions/quick/messages"
            body = {"content": "hello"}
            async with http.post(url, json=body, headers={"X-Client-ID": "quick"}) as response:
                statuses[response.status] += 1
            await asyncio.sleep(0.2)
    return statuses, Counter(await asyncio.gather(*tricklers))


async def measure(source: Path) -> dict[str, object]:
    async with runtime(source) as base:
        poisoned = await poison_rounds(base)
    async with runtime(source, max_concurrent="8") as base:
        trickled, tricklers = await beside_tricklers(base)
    return {
        "source": str(source),
        "poison rounds: innocent turns by status (of 150)": dict(sorted(poisoned.items())),
        "trickling sockets: the other client's requests by status": dict(sorted(trickled.items())),
        "trickling sockets: what the 8 tricklers got": dict(sorted(tricklers.items())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="where agent_runtime is")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.source.resolve())), indent=2))


if __name__ == "__main__":
    main()

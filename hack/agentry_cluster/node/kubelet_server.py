"""The node's kubelet API, just enough for `kubectl logs` (plain, `-f`, `--previous`,
`--tail`, `--since`, `--timestamps`, `--limit-bytes`): HTTPS on <bridge ip>:<kubelet port>
with the kubelet-serving certificate; the API server connects with its kubelet client
certificate, which must be signed by the cluster CA.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from agentry_cluster.node import logs
from agentry_cluster.node.containers import ContainerRunner

Finder = Callable[[str, str, str], ContainerRunner | None]
FINDER: web.AppKey[Finder] = web.AppKey("finder", Finder)  # type: ignore[arg-type]
FOLLOW_POLL_SECONDS = 0.2


def _lines(path: Path) -> tuple[list[str], int]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return [], 0
    # Only whole records: a record being written stays for the next read.
    end = text.rfind("\n") + 1
    return text[:end].splitlines(keepends=True), len(text[:end].encode())


async def container_logs(request: web.Request) -> web.StreamResponse:
    ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
    try:
        query = logs.parse_query(request.query)
    except logs.LogQueryError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    runner = request.app[FINDER](ns, pod, name)
    if runner is None:
        raise web.HTTPNotFound(text=f"container {name!r} of pod {ns}/{pod} is not on this node")
    path = runner.previous_log if query.previous else runner.current_log
    if path is None or not path.exists():
        what = "previous terminated" if query.previous else "running"
        raise web.HTTPBadRequest(text=f'{what} container "{name}" in pod "{pod}" not found')
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    budget = query.limit_bytes

    async def send(text: str) -> bool:
        nonlocal budget
        data = text.encode()
        if budget is not None:
            data = data[:budget]
            budget -= len(data)
        if data:
            await response.write(data)
        return budget is None or budget > 0

    records, offset = _lines(path)
    more = await send(logs.render(logs.parse_records(records), query, datetime.now(UTC)))
    follow_query = logs.LogQuery(timestamps=query.timestamps)
    while more and query.follow and not query.previous:
        alive = runner.running and runner.current_log == path
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
        with open(path, "rb") as f:  # noqa: ASYNC230 - a local file, read from an offset
            f.seek(offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        if end:
            offset += end
            fresh = chunk[:end].decode(errors="replace").splitlines(keepends=True)
            now = datetime.now(UTC)
            more = await send(logs.render(logs.parse_records(fresh), follow_query, now))
        elif not alive:
            break
    await response.write_eof()
    return response


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(finder: Finder) -> web.Application:
    app = web.Application()
    app[FINDER] = finder
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    app.router.add_get("/healthz", healthz)
    return app


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(finder: Finder, host: str, port: int, context: ssl.SSLContext) -> web.AppRunner:
    runner = web.AppRunner(create_app(finder), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner

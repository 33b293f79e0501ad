"""Server-sent events out of an aiohttp handler, for every streaming surface.

The response is prepared on the first event, not before: until a reply's first piece
exists, an error (a quota, a state failure, the model rejected with ``reject``) can still
be an ordinary JSON error with its status code, and whether the reply is degraded is
known, so it can travel in a header. ``X-Accel-Buffering: no`` asks proxies such as nginx
not to hold the events back. Used by ``routes.py``, ``openai_api.py`` and ``a2a_api.py``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent_runtime.logs import request_id_var

DEGRADED_HEADER = "X-Agentry-Degraded"


class EventStream:
    """One response of ``text/event-stream``, started by the first ``send``."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None
        self.headers: dict[str, str] = {}

    @property
    def started(self) -> bool:
        return self.response is not None

    async def send(self, data: Any, *, event: str | None = None) -> None:
        """One event whose data is ``data`` as JSON (a ``str`` is sent as it is)."""
        if self.response is None:
            headers = {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **self.headers,
            }
            request_id = request_id_var.get()
            if request_id:  # the request context adds it only to responses not yet sent
                headers["X-Request-ID"] = request_id
            self.response = web.StreamResponse(headers=headers)
            await self.response.prepare(self._request)
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        lines = "".join(f"data: {line}\n" for line in text.split("\n"))
        prefix = f"event: {event}\n" if event else ""
        await self.response.write(f"{prefix}{lines}\n".encode())

    async def end(self, *events: Any) -> web.StreamResponse:
        """Send the closing events and finish. The turn is stored by now, so a client that
        went away meanwhile (a reset) only misses its ending: not an error of ours."""
        try:
            for event in events:
                if isinstance(event, tuple):
                    await self.send(event[1], event=event[0])
                else:
                    await self.send(event)
            return await self.finish()
        except ConnectionResetError:
            return self.response or web.Response(status=499)

    async def finish(self) -> web.StreamResponse:
        """End the stream; an empty one is started first so the caller gets its headers."""
        if self.response is None:
            await self.send("", event="end")
        assert self.response is not None
        await self.response.write_eof()
        return self.response


def wants_stream(request: web.Request) -> bool:
    """``?stream=true`` (or 1, yes) on the native API."""
    return request.query.get("stream", "").lower() in {"true", "1", "yes"}

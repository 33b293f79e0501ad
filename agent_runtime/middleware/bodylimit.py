"""Refuse bodies over ``MAX_BODY_BYTES`` with 413 before reading them.

A declared ``Content-Length`` is checked here; a chunked body is bounded by the app's
``client_max_size``, which aiohttp enforces while reading (also 413).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_runtime.errors import BodyTooLarge
from agent_runtime.services import SERVICES


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[SERVICES].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    return await handler(request)

"""Refuse bodies over ``MAX_BODY_BYTES`` with 413 before reading them.

A declared ``Content-Length`` is checked here; a chunked body is bounded by the app's
``client_max_size``, which aiohttp enforces while reading (also 413). Applies to every
path; called by ``middleware/guard.py``.
"""

from __future__ import annotations

from aiohttp import web

from agent_runtime.errors import BodyTooLarge


def check_body_size(request: web.Request, limit: int) -> None:
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"body is {length} bytes; the limit is {limit}")

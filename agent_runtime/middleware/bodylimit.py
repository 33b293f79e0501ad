"""The request body: refuse it over ``MAX_BODY_BYTES`` (413), read it within a deadline (408).

A declared ``Content-Length`` is checked before reading; a chunked body is bounded by the
app's ``client_max_size``, which aiohttp enforces while reading (also 413). ``read_body``
reads the whole body before the request takes a replica slot, with
``BODY_READ_TIMEOUT_SECONDS`` for all of it: a client that trickles its body ties up its
own connection, never a slot that other clients need. A client that hangs up before its
body is complete is a client error (499), not a server error. Handlers'
``request.read()`` then returns the bytes already read. A body that arrived whole with
the headers (most do) is taken without arming the deadline's timer. Called by
``middleware/guard.py``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from agent_runtime.errors import BodyTimeout, BodyTooLarge, ClientGone


def check_body_size(request: web.Request, limit: int) -> None:
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"body is {length} bytes; the limit is {limit}")


async def read_body(request: web.Request, timeout_seconds: float) -> None:
    """Read the body into the request, or raise ``BodyTimeout`` or ``ClientGone``."""
    if not request.body_exists:
        return
    if request.content.is_eof():
        await request.read()  # all of it arrived with the headers: no wait, so no deadline
        return
    try:
        async with asyncio.timeout(timeout_seconds):
            await request.read()
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout_seconds:g} s") from None
    except ConnectionResetError:
        raise ClientGone("the client closed the connection before sending its body") from None

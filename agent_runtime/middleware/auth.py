"""Bearer-token authentication for ``/v1/`` when ``AUTH_TOKENS_FILE`` is set.

A valid token's client id is stored on the request (``client_id``) for the rate limiter's
``token`` client key. The token itself is never stored, logged or echoed.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_runtime.errors import Unauthorized
from agent_runtime.middleware import API_PREFIX, CLIENT_ID
from agent_runtime.services import SERVICES


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    tokens = request.app[SERVICES].tokens
    if tokens is None or not request.path.startswith(API_PREFIX):
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    client = tokens.client_for(token.strip()) if scheme.lower() == "bearer" else None
    if client is None:
        raise Unauthorized(
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="agentry"'},
        )
    request[CLIENT_ID] = client
    return await handler(request)

"""Bearer-token authentication for ``/v1/`` when ``AUTH_TOKENS_FILE`` is set.

A valid token's client id is stored on the request (``client_id``) for the rate limiter's
``token`` client key. The token itself is never stored, logged or echoed. Called by
``middleware/guard.py`` for ``/v1/`` paths only.
"""

from __future__ import annotations

from aiohttp import web

from agent_runtime.errors import Unauthorized
from agent_runtime.middleware import CLIENT_ID
from agent_runtime.tokens import TokenTable


def authenticate(request: web.Request, tokens: TokenTable) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    client = tokens.client_for(token.strip()) if scheme.lower() == "bearer" else None
    if client is None:
        raise Unauthorized(
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="agentry"'},
        )
    request[CLIENT_ID] = client

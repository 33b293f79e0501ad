"""Bearer-token authentication for ``/v1/`` when ``AUTH_TOKENS_FILE`` is set.

A valid token's client id is stored on the request (``client_id``): sessions belong to it
and the rate limiter's ``token`` client key uses it; ``admin`` says whether the token
is marked ``[admin]``. The token itself is never stored, logged or echoed. A source
address with too many recent failures gets 429 before its token is looked at
(``authfailures.py``). Called by ``middleware/guard.py`` for ``/v1/`` paths only.
"""

from __future__ import annotations

import logging

from aiohttp import web

from agent_runtime.authfailures import FailedAuthentications
from agent_runtime.errors import AuthThrottled, Unauthorized
from agent_runtime.middleware import ADMIN, CLIENT_ID
from agent_runtime.tokens import CallerTokensFile

# The Kubernetes API server's proxy removes ``Authorization`` once it has authenticated
# the caller (kubectl), so a token sent through it travels in this header instead.
PROXIED_AUTHORIZATION = "X-Agentry-Authorization"

log = logging.getLogger("agent_runtime.auth")


def authenticate(
    request: web.Request, tokens: CallerTokensFile, failures: FailedAuthentications | None
) -> None:
    source = request.remote or "unknown"
    if failures is not None:
        wait = failures.retry_after(source)
        if wait is not None:
            raise AuthThrottled(
                f"too many failed authentications from this address; retry in {wait} s",
                retry_after=wait,
            )
    try:
        _check_token(request, tokens)
    except Unauthorized:
        if failures is not None and failures.record(source):
            log.warning(
                "failed authentications throttled for a source address",
                extra={"fields": {"source": source, "per_minute": failures.per_minute}},
            )
        raise


def _check_token(request: web.Request, tokens: CallerTokensFile) -> None:
    headers = request.headers
    credentials = headers.get(PROXIED_AUTHORIZATION) or headers.get("Authorization") or ""
    scheme, _, token = credentials.partition(" ")
    caller = tokens.caller_for(token.strip()) if scheme.lower() == "bearer" else None
    if caller is None:
        raise Unauthorized(
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="agentry"'},
        )
    request[CLIENT_ID] = caller.client
    request[ADMIN] = caller.admin

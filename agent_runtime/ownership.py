"""Whose session a request addresses: the caller's own, or, for an admin, a named client's.

Sessions belong to the client that created them (``sessions.py``). The caller is the
client id of its bearer token, or the anonymous client when auth is off. A token marked
``[admin]`` in the tokens file may name another owner with ``?client=<id>`` on GET and
DELETE, for support and erasure requests; every such access is logged with the admin's
client id, the owner and the session id, never the contents. Called by ``routes.py``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from agent_runtime.errors import Forbidden, InvalidRequest
from agent_runtime.middleware import ADMIN, CLIENT_ID
from agent_runtime.state import ANONYMOUS_CLIENT
from agent_runtime.tokens import CLIENT_ID as CLIENT_ID_PATTERN

log = logging.getLogger("agent_runtime.ownership")

OWNER_PARAMETER = "client"


def caller_of(request: web.Request) -> str:
    """The caller's client id: its token's, or the anonymous client without auth."""
    client: str | None = request.get(CLIENT_ID)
    return ANONYMOUS_CLIENT if client is None else client


def owner_of(request: web.Request, *, admin_may_name_owner: bool) -> str:
    """The client whose session `request` reads, writes or deletes."""
    caller = caller_of(request)
    named = request.query.get(OWNER_PARAMETER)
    if named is None:
        return caller
    # Refused before any lookup: the answer is the same whether the session exists.
    if not request.get(ADMIN, False):
        raise Forbidden(f"{OWNER_PARAMETER}: only an [admin] token may name a session's owner")
    if not admin_may_name_owner:
        raise InvalidRequest(OWNER_PARAMETER, "admins may read and delete, not write, for others")
    if not CLIENT_ID_PATTERN.fullmatch(named):
        raise InvalidRequest(OWNER_PARAMETER, "must be a client id")
    log.info(
        "admin access",
        extra={
            "fields": {
                "client_id": caller,
                "owner": named,
                "session_id": request.match_info.get("id", ""),
                "action": request.method,
            }
        },
    )
    return named

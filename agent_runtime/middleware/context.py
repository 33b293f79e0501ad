"""Request id, the JSON access log line and the request metrics.

The id comes from a well-formed ``X-Request-ID`` header or is generated, is echoed in the
response and put in a context variable so every log line of the request carries it. The
access log has method, route, status and duration, never headers or bodies.

This is the runtime's only aiohttp middleware: it calls ``guard`` (errors, limits, auth)
itself rather than through a second layer, which would cost a coroutine frame and a
handler partial on every request (issue 13).
"""

from __future__ import annotations

import random
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_runtime.logs import log_access, request_id_var
from agent_runtime.middleware import API_PREFIX, DEGRADED, ERROR_CODE
from agent_runtime.middleware.guard import guard
from agent_runtime.services import SERVICES

_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Request ids only need to be unique enough to correlate log lines, not unguessable:
# 128 bits from the process's PRNG (seeded from the OS) cost far less than a uuid4's
# urandom call on every request, and keep the same 32 hex digit shape.
_random_bits = random.Random().getrandbits  # noqa: S311 - ids, not secrets


def new_request_id() -> str:
    return f"{_random_bits(128):032x}"


def outcome_of(status: int, request: web.Request) -> str:
    if status < 300:
        return "degraded" if request.get(DEGRADED) else "ok"
    if status == 401:
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status == 429:
        return "throttled"
    if status < 500:
        return "client_error"
    if request.get(ERROR_CODE) == "overloaded":
        return "rejected"
    if status == 503:
        return "unavailable"
    return "server_error"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Request-ID", "")
    request_id = supplied if supplied and _VALID_ID.fullmatch(supplied) else new_request_id()
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    services = request.app[SERVICES]
    try:
        response = await guard(request, handler, services)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        if request.path.startswith(API_PREFIX):
            services.metrics.observe_request(outcome_of(status, request), elapsed)
        route = request.match_info.route.resource
        template = route.canonical if route is not None else "unmatched"
        log_access(request_id, request.method, template, status, elapsed)
        request_id_var.reset(token)

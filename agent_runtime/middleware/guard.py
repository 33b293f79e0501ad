"""Errors, body limit, auth, rate limit and concurrency, in one call.

Each aiohttp middleware layer costs a coroutine frame and a handler partial on every
request (and aiohttp adds a layer of its own behind any middleware), so the runtime has
a single middleware, ``request_context``, which calls ``guard`` directly; the concerns
between the request context and the handler are applied here in this order: errors
(wrapping all the rest) → body limit → auth → rate limit → the client's in-flight slot →
the body, read within its deadline → the replica's concurrency → the token budget
(POSTs, when one is set) → handler. The body is read before a replica slot is taken, so
a slow body holds only its own client's slot. Each concern keeps its own module; this
one only sequences them. Only ``/v1/`` paths are authenticated and limited.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_runtime.middleware import API_PREFIX
from agent_runtime.middleware.auth import authenticate
from agent_runtime.middleware.bodylimit import check_body_size, read_body
from agent_runtime.middleware.errors import response_for
from agent_runtime.middleware.limits import (
    admit,
    budget_on,
    budgeted,
    check_concurrency,
    client_key,
    take_client_slot,
)
from agent_runtime.services import Services


async def guard(request: web.Request, handler: Handler, services: Services) -> web.StreamResponse:
    """The response to `request`: the handler's, or the refusal of the first concern
    that refuses it (as an error response; never raises)."""
    try:
        check_body_size(request, services.settings.max_body_bytes)
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        return await _limited(request, handler, services)
    except Exception as error:
        return response_for(request, error)


async def _limited(
    request: web.Request, handler: Handler, services: Services
) -> web.StreamResponse:
    """A ``/v1/`` request, through every limit in the order of the module docstring."""
    if services.tokens is not None:
        authenticate(request, services.tokens, services.auth_failures)
    key = client_key(request, services.settings.effective_client_key)
    limiter = services.limits.current()
    decision = None if limiter is None else admit(key, services, limiter)
    take_client_slot(key, services)
    try:
        await read_body(request, services.settings.body_read_timeout_seconds)
        check_concurrency(services)
        services.in_flight += 1  # the in-flight gauge reads this at scrape time (create_app)
        try:
            if request.method == "POST" and budget_on(services):
                response = await budgeted(request, handler, key, services)
            else:
                response = await handler(request)
        finally:
            services.in_flight -= 1
    finally:
        services.client_slots.release(key)
    if decision is not None:
        response.headers.update(decision.headers())
    return response

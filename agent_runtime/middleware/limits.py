"""Rate limiting (429), each client's requests in flight (429) and load shedding over
``MAX_CONCURRENT`` (503) for ``/v1/``.

The client key is ``X-Client-ID`` (``header``), the authenticated client id (``token``,
the default with auth on) or the peer address (``ip``); a request without the chosen key
falls back to its address. With ``header`` a caller picks its own key, so it can use
another's bucket or escape its own by changing the header. Every limited response
carries the IETF draft ``RateLimit`` and ``RateLimit-Policy`` fields; refusals add
``Retry-After``. The first refusal per client per 10 seconds is logged; every refusal is
counted. Called by ``middleware/guard.py`` for ``/v1/`` paths.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_runtime.config import ClientKey
from agent_runtime.errors import Overloaded, Throttled, TokenBudgetSpent, TooManyInFlight
from agent_runtime.middleware import CLIENT_ID
from agent_runtime.ratelimit import Decision, RateLimiter
from agent_runtime.services import Services
from agent_runtime.token_budget import current_turn_tokens

log = logging.getLogger("agent_runtime.ratelimit")


def client_key(request: web.Request, mode: ClientKey) -> str:
    if mode == "header":
        value = request.headers.get("X-Client-ID", "").strip()
        if value:
            return "h:" + value[:128]
    elif mode == "token":
        client = request.get(CLIENT_ID)  # set by auth, which the settings require for token
        if client:
            return "t:" + str(client)
    return "ip:" + (request.remote or "unknown")


def admit(key: str, services: Services, limiter: RateLimiter) -> Decision:
    """The limiter's decision for an allowed request; a refusal raises ``Throttled``."""
    decision = limiter.decide(key)
    if not decision.allowed:
        services.metrics.throttled.labels(decision.scope).inc()
        if decision.log:
            log.warning(
                "rate limit exceeded",
                extra={
                    "fields": {
                        "client": key,
                        "scope": decision.scope,
                        "retry_after": decision.retry_after,
                    }
                },
            )
        raise Throttled(
            f"rate limit exceeded; retry in {decision.retry_after} s", headers=decision.headers()
        )
    return decision


def check_concurrency(services: Services) -> None:
    """Shed load over ``MAX_CONCURRENT``; the caller counts the request in flight."""
    if services.in_flight >= services.settings.max_concurrent:
        raise Overloaded("too many requests in flight; try again shortly", retry_after=1)


def take_client_slot(key: str, services: Services) -> None:
    """Take one of the client's in-flight slots (429 when it has none left); the caller
    gives it back with ``services.client_slots.release(key)`` in a ``finally``. Not a
    context manager: a generator-based one costs a generator and two calls per request."""
    slots = services.client_slots
    if not slots.take(key):
        services.metrics.throttled.labels("in_flight").inc()
        raise TooManyInFlight(
            f"this client already has {slots.per_client} requests in flight; "
            "wait for one to finish",
            retry_after=1,
        )


def budget_on(services: Services) -> bool:
    """Whether a token budget applies now (limits.json may have set or removed one)."""
    limits = services.limits.limits
    budget = services.token_budget
    if limits.tokens_per_minute or budget.enabled:
        budget.configure(limits.tokens_per_minute, limits.client_tokens_per_minute)
    return budget.enabled


async def budgeted(
    request: web.Request, handler: Handler, key: str, services: Services
) -> web.StreamResponse:
    """The handler within a token reservation (``token_budget.py``): reserved from the
    body's size, settled with what the turn used, refunded when no turn ran."""
    body = await request.read()  # already read by read_body: this returns it
    try:
        reservation = services.token_budget.reserve(key, len(body))
    except TokenBudgetSpent as refusal:
        services.metrics.throttled.labels(f"tokens_{refusal.scope}").inc()
        log.info(
            "token budget spent",
            extra={"fields": {"client": key, "scope": refusal.scope}},
        )
        raise
    marker = current_turn_tokens.set(reservation.tokens)
    try:
        return await handler(request)
    finally:
        current_turn_tokens.reset(marker)
        services.token_budget.settle(reservation)

"""Rate limiting (429) and load shedding over ``MAX_CONCURRENT`` (503) for ``/v1/``.

The client key is ``X-Client-ID`` (``header``), the authenticated client id (``token``) or
the peer address (``ip``); a request without the chosen key falls back to its address.
Every limited response carries the IETF draft ``RateLimit`` and ``RateLimit-Policy``
fields; refusals add ``Retry-After``. The first refusal per client per 10 seconds is
logged; every refusal is counted. Called by ``middleware/guard.py`` for ``/v1/`` paths.
"""

from __future__ import annotations

import hashlib
import logging

from aiohttp import web

from agent_runtime.errors import Overloaded, Throttled
from agent_runtime.middleware import CLIENT_ID
from agent_runtime.ratelimit import Decision, RateLimiter
from agent_runtime.services import Services

log = logging.getLogger("agent_runtime.ratelimit")


def client_key(request: web.Request, mode: str) -> str:
    if mode == "header":
        value = request.headers.get("X-Client-ID", "").strip()
        if value:
            return "h:" + value[:128]
    elif mode == "token":
        client = request.get(CLIENT_ID)
        if client:
            return "t:" + str(client)
        bearer = request.headers.get("Authorization", "")
        if bearer:
            return "t:" + hashlib.sha256(bearer.encode()).hexdigest()[:16]
    return "ip:" + (request.remote or "unknown")


def admit(request: web.Request, services: Services, limiter: RateLimiter) -> Decision:
    """The limiter's decision for an allowed request; a refusal raises ``Throttled``."""
    key = client_key(request, services.settings.rate_limit_client_key)
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

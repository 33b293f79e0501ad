"""The token budget: ``rateLimit.tokensPerMinute`` for the replica and for each client.

Gateways that limit tokens (Envoy AI Gateway, agentgateway) check the budget before the
model call and charge the real usage after it; this does the same. A POST to ``/v1/``
first *reserves* an estimate: the request body's characters / 4 (the question) plus
``OUTPUT_ALLOWANCE`` tokens for the answer. The turn then runs, and its real usage (the
provider's ``usage``, summed over every model call of the turn, tool steps included; the
builtin's estimate) is *settled*: the difference is charged, or refunded when the turn
used less, or everything is refunded when no turn ran.

When the reserve was too small (a long history, many tool steps), the turn is not cut
off: the overrun is charged after it, the bucket goes below zero, and the next requests
are refused until the budget has refilled past the debt. A budget is a token bucket that
holds a minute's tokens and refills continuously (tokensPerMinute / 60 each second), so
a spent budget admits again within the minute, not at a window edge.

A request is admitted when the bucket holds its estimate (or a full minute's tokens, for
an estimate bigger than that), else it is refused with 429, ``Retry-After`` (seconds
until the bucket holds the estimate) and the IETF draft ``RateLimit`` fields under the
policy name ``tokens``. Called by ``middleware/guard.py``; the limits come live from
limits.json (``limits.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from agent_runtime.errors import TokenBudgetSpent
from agent_runtime.providers.base import CHARS_PER_TOKEN
from agent_runtime.ratelimit import BucketTable, TokenBucket

OUTPUT_ALLOWANCE = 256
"""Tokens reserved for the answer before it is known."""
WINDOW_SECONDS = 60


@dataclass(slots=True)
class TurnTokens:
    """The tokens the turns of one request used; ``Turns`` adds to it."""

    used: int = 0


current_turn_tokens: ContextVar[TurnTokens | None] = ContextVar("turn_tokens", default=None)
"""Set by the middleware around a budgeted request, so that the turn pipeline can report
its usage without every surface passing it back."""


def record_turn_tokens(tokens: int) -> None:
    sink = current_turn_tokens.get()
    if sink is not None:
        sink.used += tokens


@dataclass(slots=True)
class Reservation:
    client: str
    amount: int
    tokens: TurnTokens = field(default_factory=TurnTokens)


class TokenBudget:
    def __init__(self, *, per_client: bool, max_clients: int, clock: Callable[[], float]) -> None:
        self._per_client = per_client
        self._clock = clock
        self.per_minute = 0
        self.client_per_minute = 0
        self._replica: TokenBucket | None = None
        self._clients = BucketTable(1.0, 1, max_clients)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def configure(self, per_minute: int, client_per_minute: int) -> None:
        """New budgets (limits.json changed); buckets keep what they hold, up to the new size."""
        client = client_per_minute or max(1, per_minute // 2)
        if (per_minute, client) == (self.per_minute, self.client_per_minute):
            return
        now = self._clock()
        self.per_minute, self.client_per_minute = per_minute, client
        if per_minute <= 0:
            self._replica = None
            return
        if self._replica is None:
            self._replica = TokenBucket(per_minute / WINDOW_SECONDS, per_minute, now)
        else:
            self._replica.retune(per_minute / WINDOW_SECONDS, per_minute, now)
        self._clients.retune(client / WINDOW_SECONDS, client, now)

    def reserve(self, client: str, body_chars: int) -> Reservation:
        """Take the estimate from the buckets, or raise ``TokenBudgetSpent`` (429)."""
        replica = self._replica
        assert replica is not None, "reserve() needs an enabled budget"
        estimate = -(-body_chars // CHARS_PER_TOKEN) + OUTPUT_ALLOWANCE
        now = self._clock()
        replica.refill(now)
        buckets = [("replica", replica)]
        if self._per_client:
            bucket = self._clients.use(client, now)
            bucket.refill(now)
            buckets.insert(0, ("client", bucket))
        for scope, bucket in buckets:
            need = min(estimate, bucket.burst)
            if bucket.tokens < need:
                raise _spent(scope, bucket, need)
        for _, bucket in buckets:
            bucket.tokens -= estimate
        return Reservation(client, estimate)

    def settle(self, reservation: Reservation) -> None:
        """Charge the difference between the real usage and the reserve (or refund it)."""
        difference = reservation.tokens.used - reservation.amount
        if difference == 0 or self._replica is None:
            return
        self._replica.tokens = min(self._replica.tokens - difference, self._replica.burst)
        bucket = self._clients.get(reservation.client) if self._per_client else None
        if bucket is not None:
            bucket.tokens = min(bucket.tokens - difference, bucket.burst)


def _spent(scope: str, bucket: TokenBucket, need: int) -> TokenBudgetSpent:
    retry = max(1, math.ceil(bucket.seconds_until(float(need))))
    remaining = max(0, math.floor(bucket.tokens))
    reset = math.ceil(bucket.seconds_until(float(bucket.burst)))
    headers = {
        "RateLimit-Policy": f'"tokens";q={bucket.burst};w={WINDOW_SECONDS}',
        "RateLimit": f'"tokens";r={remaining};t={reset}',
        "Retry-After": str(retry),
    }
    who = "this client's" if scope == "client" else "the agent's"
    return TokenBudgetSpent(
        f"{who} token budget is spent ({bucket.burst} tokens a minute); retry in {retry} s",
        headers=headers,
        scope=scope,
    )

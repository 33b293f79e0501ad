"""Token-bucket rate limiting: one bucket for the replica and one per client.

Hand-written because none of the common libraries has per-key token buckets with an
injected clock. The client table is an LRU bounded at ``max_clients``: a flood of new
client ids evicts the least recently seen buckets instead of growing memory. Called by
``middleware/limits.py``; the decision carries what the IETF draft header fields need.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a request takes one token."""

    __slots__ = ("burst", "policy", "rate", "tokens", "updated", "warned_at", "window_seconds")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.tokens = float(burst)
        self.updated = now
        self.warned_at = -math.inf
        self._set(rate, burst)

    def _set(self, rate: float, burst: int) -> None:
        """The size and rate, and what the header fields derive from them alone, once."""
        self.rate = rate
        self.burst = burst
        self.window_seconds = max(1, math.ceil(burst / rate))
        self.policy = f'"default";q={burst};w={self.window_seconds}'

    def refill(self, now: float) -> float:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self.updated = now
        return self.tokens

    def retune(self, rate: float, burst: int, now: float) -> None:
        """New rate and size: what accrued at the old rate is kept, up to the new size."""
        self.refill(now)
        self._set(rate, burst)
        self.tokens = min(self.tokens, float(burst))

    def seconds_until(self, tokens: float) -> float:
        missing = tokens - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate


class BucketTable:
    """Token buckets by key, alike, in an LRU bounded at ``max_entries``.

    A flood of new keys evicts the least recently seen buckets instead of growing memory.
    """

    def __init__(self, rate: float, burst: int, max_entries: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_entries = max_entries
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def retune(self, rate: float, burst: int, now: float) -> None:
        """New rate and size for new buckets and every bucket held."""
        self.rate = rate
        self.burst = burst
        for bucket in self._buckets.values():
            bucket.retune(rate, burst, now)

    def get(self, key: str) -> TokenBucket | None:
        """The bucket of ``key`` if it has one; looking does not count as a use."""
        return self._buckets.get(key)

    def use(self, key: str, now: float) -> TokenBucket:
        """The bucket of ``key``, made full if new, as the most recently used."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket


class Decision(NamedTuple):
    """Immutable; a named tuple because one is built per limited request (cheaper to make)."""

    allowed: bool
    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int
    retry_after: int  # 0 when allowed: only a refusal says when to retry
    scope: str  # "client" or "replica": which bucket decided
    log: bool  # first refusal for this client in the sampling period
    policy: str  # the RateLimit-Policy field, made once per bucket size (TokenBucket)

    def headers(self) -> dict[str, str]:
        """``RateLimit-Policy`` and ``RateLimit`` (IETF draft), plus ``Retry-After`` on refusal."""
        fields = {
            "RateLimit-Policy": self.policy,
            "RateLimit": f'"default";r={self.remaining};t={self.reset_seconds}',
        }
        if not self.allowed:
            fields["Retry-After"] = str(self.retry_after)
        return fields


def _check(rate: float, burst: int) -> None:
    if rate <= 0 or burst < 1:
        raise ValueError("rate must be > 0 and burst >= 1")


def _client_share(
    rate: float, burst: int, client_rate: float | None, client_burst: int | None
) -> tuple[float, int]:
    """A client's (rate, burst): the given ones, else half of the replica's. A client bucket
    as large as the replica's could never refuse anything the replica bucket would admit,
    so one noisy client could starve the rest."""
    return (client_rate or rate / 2, client_burst or max(1, burst // 2))


class RateLimiter:
    """Decides whether a request from ``client`` may proceed now."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        per_client: bool,
        max_clients: int,
        clock: Callable[[], float],
        client_rate: float | None = None,
        client_burst: int | None = None,
        log_every_seconds: float = 10.0,
    ) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self.per_client = per_client
        self.client_rate, self.client_burst = _client_share(rate, burst, client_rate, client_burst)
        self.max_clients = max_clients
        self._clock = clock
        self._log_every = log_every_seconds
        self._replica = TokenBucket(rate, burst, clock())
        self._clients = BucketTable(self.client_rate, self.client_burst, max_clients)

    @property
    def tracked_clients(self) -> int:
        return len(self._clients)

    def reconfigure(
        self,
        rate: float,
        burst: int,
        *,
        client_rate: float | None = None,
        client_burst: int | None = None,
    ) -> None:
        """New limits for this replica (a scale or a new spec.rateLimit, see limits.py);
        every bucket keeps its tokens up to its new size."""
        _check(rate, burst)
        now = self._clock()
        self.rate = rate
        self.burst = burst
        self.client_rate, self.client_burst = _client_share(rate, burst, client_rate, client_burst)
        self._replica.retune(rate, burst, now)
        self._clients.retune(self.client_rate, self.client_burst, now)

    def decide(self, client: str) -> Decision:
        now = self._clock()
        replica = self._replica
        replica.refill(now)
        if not self.per_client:
            if replica.tokens < 1.0:
                return self._decision(False, replica, scope="replica", log=self._warn(replica, now))
            replica.tokens -= 1.0
            return self._decision(True, replica, scope="")
        bucket = self._clients.use(client, now)
        bucket.refill(now)
        # The client bucket is checked first; when both admit, both take a token and the
        # one with fewer left (the client's on a tie) describes the decision.
        if bucket.tokens < 1.0:
            return self._decision(False, bucket, scope="client", log=self._warn(bucket, now))
        if replica.tokens < 1.0:
            return self._decision(False, replica, scope="replica", log=self._warn(bucket, now))
        bucket.tokens -= 1.0
        replica.tokens -= 1.0
        tightest = replica if replica.tokens < bucket.tokens else bucket
        return self._decision(True, tightest, scope="")

    def _warn(self, bucket: TokenBucket, now: float) -> bool:
        """Whether to log this refusal: the first per ``bucket`` in each sampling period."""
        if now - bucket.warned_at >= self._log_every:
            bucket.warned_at = now
            return True
        return False

    def _decision(
        self,
        allowed: bool,
        bucket: TokenBucket,
        *,
        scope: str,
        log: bool = False,
    ) -> Decision:
        tokens = bucket.tokens
        return Decision(
            allowed,
            bucket.burst,
            bucket.window_seconds,
            max(0, math.floor(tokens)),  # remaining
            math.ceil(bucket.seconds_until(float(bucket.burst))),  # reset: until full
            0 if allowed else max(1, math.ceil(bucket.seconds_until(1.0))),  # retry after
            scope,
            log,
            bucket.policy,
        )

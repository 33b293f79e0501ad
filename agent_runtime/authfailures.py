"""Failed authentications per source address, so guessing tokens is slow.

After ``AUTH_FAILURES_PER_MINUTE`` failures from one peer address, its requests are
answered 429 before their token is looked at, until its bucket refills (one more attempt
every 60/N seconds). One token bucket per address, in a ``BucketTable`` bounded at
``MAX_SOURCES``. The address is the peer the pod sees: behind a proxy that hides client
addresses every client shares the proxy's, and one guesser slows them all. Called by
``middleware/auth.py``; time comes from the injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from agent_runtime.ratelimit import BucketTable

MAX_SOURCES = 10_000


class FailedAuthentications:
    """Counts failures per source; says how long a source that used them up must wait."""

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float], max_sources: int = MAX_SOURCES
    ) -> None:
        self.per_minute = per_minute
        self._table = BucketTable(per_minute / 60.0, per_minute, max_sources)
        self._clock = clock

    def retry_after(self, source: str) -> int | None:
        """Whole seconds until ``source`` may try again, or None when it may now."""
        bucket = self._table.get(source)
        if bucket is None or bucket.refill(self._clock()) >= 1.0:
            return None
        return max(1, math.ceil(bucket.seconds_until(1.0)))

    def record(self, source: str) -> bool:
        """Count one failure of ``source``; True when it used up the source's attempts."""
        now = self._clock()
        bucket = self._table.use(source, now)
        bucket.tokens = max(0.0, bucket.refill(now) - 1.0)
        return bucket.tokens < 1.0

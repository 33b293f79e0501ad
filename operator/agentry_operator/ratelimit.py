"""A token bucket that bounds how fast the operator's own client sends API requests.

kopf has no client-side rate limit, and aiohttp has none either (client-go's
`QPS`/`Burst` have no Python counterpart), so the bound lives here, in front of every
request `Kube` sends. A burst of new Agents may spend `burst` requests at once; after that
requests leave at `qps` per second, so a flood of events can never turn into a flood of
requests that the API server's priority and fairness would queue or reject (429).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """`acquire()` waits until a token is free; tokens refill at `qps` up to `burst`.

    Waiters are served in arrival order (one lock), so a long-waiting request is never
    overtaken by later ones. `qps <= 0` turns the bound off.
    """

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    async def acquire(self) -> float:
        """Take one token; returns the seconds waited for it (0 within the burst)."""
        if self.qps <= 0:
            return 0.0
        async with self._lock:
            self._refill()
            waited = 0.0
            if self._tokens < 1:
                waited = (1 - self._tokens) / self.qps
                await self._sleep(waited)
                self._refill()
            self._tokens -= 1
            return waited

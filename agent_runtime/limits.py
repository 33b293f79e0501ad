"""This replica's rate limits, read from a mounted file and applied without a restart.

The operator writes the replica's share of the Agent's limit into a ConfigMap that the
pod mounts (``AGENTRY_LIMITS_FILE``, key ``limits.json``), so ``kubectl scale`` or a new
``spec.rateLimit`` changes the file and no pod rolls. The file is JSON::

    {"requestsPerSecond": 3.333333, "burst": 7,
     "perClientRequestsPerSecond": 0, "perClientBurst": 0,
     "tokensPerMinute": 4000, "perClientTokensPerMinute": 0}

every value this replica's own (0 for the client fields: half of the replica's; 0
requests per second: no limiting). ``LimitsFile`` re-reads it when it changes (one
``stat`` at most once a second, on the request that asks), the way ``tokens.CallerTokensFile``
reloads the tokens: a version that cannot be used is logged and ignored, and the
previous limits stay. Without ``AGENTRY_LIMITS_FILE`` the ``AGENTRY_RATE_LIMIT_*``
variables give fixed limits (``make run``, tests). Called by ``middleware/guard.py``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_runtime.config import Settings
from agent_runtime.ratelimit import RateLimiter
from agent_runtime.watchedfile import ReloadingFile, read_text

log = logging.getLogger("agent_runtime.limits")


class LimitsFileError(ValueError):
    """The limits file cannot be used; the message names the field."""


class Limits(BaseModel):
    """One replica's limits, as the operator writes them."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    requests_per_second: float = Field(default=0.0, ge=0, alias="requestsPerSecond")
    burst: int = Field(default=0, ge=0)
    client_requests_per_second: float = Field(default=0.0, ge=0, alias="perClientRequestsPerSecond")
    client_burst: int = Field(default=0, ge=0, alias="perClientBurst")
    tokens_per_minute: int = Field(default=0, ge=0, alias="tokensPerMinute")
    client_tokens_per_minute: int = Field(default=0, ge=0, alias="perClientTokensPerMinute")

    @property
    def enabled(self) -> bool:
        return self.requests_per_second > 0

    @property
    def effective_burst(self) -> int:
        """The burst, at least one second's worth when limiting is on (as the settings do)."""
        if self.burst == 0 and self.enabled:
            return max(1, math.ceil(self.requests_per_second))
        return self.burst

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            requests_per_second=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            client_requests_per_second=settings.rate_limit_client_rps,
            client_burst=settings.rate_limit_client_burst,
            tokens_per_minute=settings.tokens_per_minute,
            client_tokens_per_minute=settings.client_tokens_per_minute,
        )

    @classmethod
    def parse(cls, text: str) -> Limits:
        """The limits in ``text``; LimitsFileError naming the field when they are unusable."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LimitsFileError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise LimitsFileError("must be a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise LimitsFileError(f"{field}: {error['msg']}") from None

    @classmethod
    def read(cls, path: Path) -> Limits:
        return cls.parse(read_text(path, LimitsFileError))


class LiveLimiter:
    """The rate limiter in force, reconfigured when the limits change.

    Buckets survive a change: a replica that gets a larger share keeps the tokens it has
    and refills faster, and one that gets a smaller share loses only what is over its new
    burst, so a scale-out neither resets nor doubles anyone's allowance.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        per_client: bool,
        max_clients: int,
        clock: Callable[[], float],
        source: LimitsFile | None = None,
    ) -> None:
        self._per_client = per_client
        self._max_clients = max_clients
        self._clock = clock
        self._source = source
        self._limiter: RateLimiter | None = None
        self.limits = limits
        self._apply(limits)

    def current(self) -> RateLimiter | None:
        """The limiter for this request (None: no limiting), after a reload if due."""
        if self._source is not None:
            changed = self._source.reload_if_changed()
            if changed is not None and changed != self.limits:
                self._apply(changed)
        return self._limiter

    def _apply(self, limits: Limits) -> None:
        self.limits = limits
        if not limits.enabled:
            self._limiter = None
            return
        rate, burst = limits.requests_per_second, limits.effective_burst
        client_rate, client_burst = limits.client_requests_per_second, limits.client_burst
        if self._limiter is not None:
            self._limiter.reconfigure(
                rate, burst, client_rate=client_rate, client_burst=client_burst
            )
            return
        self._limiter = RateLimiter(
            rate,
            burst,
            per_client=self._per_client,
            client_rate=client_rate,
            client_burst=client_burst,
            max_clients=self._max_clients,
            clock=self._clock,
        )


class LimitsFile(ReloadingFile[Limits]):
    """The limits file's newest usable version."""

    def __init__(
        self, path: Path, clock: Callable[[], float], *, check_interval: float = 1.0
    ) -> None:
        """Read the file now; LimitsFileError when it cannot be used (a startup error)."""
        super().__init__(
            path,
            Limits.read,
            clock,
            log=log,
            what="limits",
            summary=lambda limits: {
                "rps": limits.requests_per_second,
                "burst": limits.effective_burst,
            },
            check_interval=check_interval,
        )

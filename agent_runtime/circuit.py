"""A circuit breaker around the model provider (and each tool server): closed, open, half-open.

Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open: calls
are refused (the fallback answers) until ``open_seconds`` pass. Half-open: one trial call
goes through; success closes the circuit, failure opens it again. Time is an injected
monotonic clock. Used by ``providers/guarded.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]

log = logging.getLogger("agent_runtime.circuit")


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int,
        open_seconds: float,
        clock: Callable[[], float],
        on_change: Callable[[State], None] | None = None,
        name: str = "model",
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._on_change = on_change
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.open_seconds:
            self._move("half_open")
        return self._state

    def allow(self) -> bool:
        """May a call go to the provider now? In half-open, only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._trial_in_flight = False
        if self._state != "closed":
            self._move("closed")

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._failures += 1
        if self._state == "half_open" or (
            self._state == "closed" and self._failures >= self.failure_threshold
        ):
            self._opened_at = self._clock()
            self._move("open")

    def release(self) -> None:
        """A trial call ended without a verdict (cancelled): let another one try."""
        self._trial_in_flight = False

    def retry_after(self) -> int:
        """Whole seconds until the provider will be tried again (at least 1)."""
        if self._state != "open":
            return 1
        remaining = self.open_seconds - (self._clock() - self._opened_at)
        return max(1, math.ceil(remaining))

    def _move(self, state: State) -> None:
        if state == self._state:
            return
        log.warning(
            "%s circuit %s",
            self.name,
            state,
            extra={"fields": {"circuit": state, "from": self._state}},
        )
        self._state = state
        if self._on_change is not None:
            self._on_change(state)

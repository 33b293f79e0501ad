"""The circuit breaker: closed → open after N failures → half-open after a pause → closed.

Checks with an injected clock: consecutive failures open it; while open nothing is let
through and Retry-After counts down; half-open lets exactly one trial through; a
successful trial closes it, a failed one opens it again.
"""

from __future__ import annotations

from agent_runtime.circuit import CircuitBreaker


def make(now: list[float], changes: list[str] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3,
        open_seconds=10,
        clock=lambda: now[0],
        on_change=(changes.append if changes is not None else None),
    )


async def test_consecutive_failures_open_the_circuit_and_it_closes_by_itself_on_recovery() -> None:
    now, changes = [0.0], []
    breaker = make(now, changes)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == 10
    now[0] = 7.5
    assert breaker.retry_after() == 3
    now[0] = 10.0
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one trial at a time
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert changes == ["open", "half_open", "closed"]


async def test_a_failed_trial_opens_the_circuit_again() -> None:
    now = [0.0]
    breaker = make(now)
    for _ in range(3):
        breaker.record_failure()
    now[0] = 11
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.retry_after() == 10


async def test_a_success_resets_the_failure_count() -> None:
    breaker = make([0.0])
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"

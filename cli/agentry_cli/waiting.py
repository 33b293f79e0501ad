"""Polling until a condition holds, with an injected clock and a timeout.

start, stop, restart and rotate-key wait for the operator or the runtime to act; the
API has no single event for "done", so they poll a cheap read every second or two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .errors import OperationFailed
from .timing import Clock

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    *,
    clock: Clock,
    timeout: float,
    interval: float,
    what: str,
    progress: Callable[[], str] | None = None,
) -> T:
    """Call `check` until it returns a value; raise `OperationFailed` after `timeout`.

    `progress` describes the current state for the timeout message, so the user sees
    what was still missing (for example "phase Pending, 1/2 ready").
    """
    deadline = clock.now().timestamp() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - clock.now().timestamp()
        if remaining <= 0:
            detail = f" ({progress()})" if progress is not None else ""
            raise OperationFailed(f"timed out after {timeout:g}s waiting for {what}{detail}")
        clock.sleep(min(interval, remaining))

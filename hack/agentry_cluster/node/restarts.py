"""When a container that stopped runs again: restartPolicy and the crash-loop back-off.

Like the kubelet: the first restart is immediate, then the delay doubles from a base
(10 s) to a cap (5 min); a container that ran for longer than twice the cap before
stopping starts the count again.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_SECONDS = 10.0
CAP_SECONDS = 300.0


def should_restart(policy: str, exit_code: int) -> bool:
    """`Always` restarts any exit, `OnFailure` a non-zero one, `Never` none."""
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


@dataclass
class BackOff:
    """The back-off of one container (the kubelet keeps one per container too)."""

    base: float = DEFAULT_BASE_SECONDS
    cap: float = CAP_SECONDS
    steps: int = 0

    def next_delay(self, ran_for: float) -> float:
        """The wait before the next start, given how long the last run lasted."""
        if ran_for > 2 * self.cap:
            self.steps = 0
        delay = 0.0 if self.steps == 0 else min(self.base * (2 ** (self.steps - 1)), self.cap)
        self.steps += 1
        return delay

"""Per-environment defaults: log level, probe timings and the termination grace period.

`spec.environment` picks one profile; staging and production probe less eagerly and give
the runtime longer to drain and write its final checkpoint. The termination grace period
is derived, not chosen: the runtime's shutdown delay (serving while unready, until the
endpoints have caught up) plus its drain time plus time for the final checkpoint, so the
kubelet never kills a runtime that is still doing what it was told to.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentry_operator.models import Environment


@dataclass(frozen=True)
class Profile:
    """Defaults that depend on spec.environment."""

    log_level: str
    probe_period_seconds: int
    probe_timeout_seconds: int
    probe_failure_threshold: int
    startup_failure_threshold: int
    shutdown_delay_seconds: int
    """AGENTRY_SHUTDOWN_DELAY_SECONDS: serving, unready, after SIGTERM."""
    drain_seconds: int
    """AGENTRY_SHUTDOWN_GRACE_SECONDS: in-flight requests may finish after the listener closes."""

    @property
    def termination_grace_period_seconds(self) -> int:
        return self.shutdown_delay_seconds + self.drain_seconds + FINAL_CHECKPOINT_SECONDS


FINAL_CHECKPOINT_SECONDS = 10
"""Room for the final checkpoint and heartbeat after the drain."""

PROFILES: dict[str, Profile] = {
    "development": Profile("debug", 5, 2, 3, 60, 0, 5),
    "staging": Profile("info", 10, 2, 3, 60, 5, 15),
    "production": Profile("info", 10, 3, 3, 90, 5, 45),
}


def profile_for(environment: Environment) -> Profile:
    return PROFILES[environment]

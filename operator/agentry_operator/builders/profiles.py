"""Per-environment defaults: log level, probe timings, termination grace, resources.

`spec.environment` picks one profile; staging and production probe less eagerly and give
the runtime longer to drain and write its final checkpoint. The termination grace period
is derived, not chosen: the runtime's shutdown delay (serving while unready, until the
endpoints have caught up) plus its drain time plus time for the final checkpoint, so the
kubelet never kills a runtime that is still doing what it was told to.

The resource figures come from the runtime measured at idle and under the benchmark load
(`python -m benchmarks.footprint`, docs/benchmarks.md "Agent pod footprint"): 99 MiB RSS
and under 1m CPU idle, 120 MiB and about 0.4m CPU per request/s under load. How they
become requests and limits is in `resources.py`.
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
    cpu_request: str
    """Reserved CPU: development packs densely (idle is under 1m); production reserves
    the ~600 requests/s that 250m served in the footprint benchmark."""
    memory_request: str
    """Reserved memory: idle RSS (99 MiB) plus room in development; the peak under load
    (120 MiB) plus room for a checkpoint of modest state in staging and production."""
    memory_limit: bool
    """Whether a memory limit is set (staging, production): derived from
    spec.sessions.maxStateBytes, see resources.memory_limit."""

    @property
    def termination_grace_period_seconds(self) -> int:
        return self.shutdown_delay_seconds + self.drain_seconds + FINAL_CHECKPOINT_SECONDS


FINAL_CHECKPOINT_SECONDS = 10
"""Room for the final checkpoint and heartbeat after the drain."""

PROFILES: dict[str, Profile] = {
    "development": Profile("debug", 5, 2, 3, 60, 0, 5, "50m", "128Mi", memory_limit=False),
    "staging": Profile("info", 10, 2, 3, 60, 5, 15, "100m", "160Mi", memory_limit=True),
    "production": Profile("info", 10, 3, 3, 90, 5, 45, "250m", "256Mi", memory_limit=True),
}


def profile_for(environment: Environment) -> Profile:
    return PROFILES[environment]

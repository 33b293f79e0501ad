"""Per-environment defaults: log level, probe timings and the termination grace period.

`spec.environment` picks one profile; staging and production probe less eagerly and give
the runtime longer to drain and write its final checkpoint.
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
    termination_grace_period_seconds: int


PROFILES: dict[str, Profile] = {
    "development": Profile("debug", 5, 2, 3, 60, 15),
    "staging": Profile("info", 10, 2, 3, 60, 30),
    "production": Profile("info", 10, 3, 3, 90, 60),
}


def profile_for(environment: Environment) -> Profile:
    return PROFILES[environment]

"""The operator's own Prometheus metrics: reconciles, errors, durations, agents by phase.

Handlers record into these; `cli.main` serves them on AGENTRY_OPERATOR_METRICS_PORT.
A registry of our own keeps tests free of the process-global default one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "agentry_operator_reconciles_total",
    "Reconciles of Agents by step and outcome.",
    ["step", "outcome"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "agentry_operator_errors_total",
    "Errors while reconciling Agents, by step.",
    ["step"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "agentry_operator_reconcile_duration_seconds",
    "Time spent in one reconcile step.",
    ["step"],
    registry=REGISTRY,
)
AGENTS = Gauge(
    "agentry_operator_agents",
    "Agents by phase, as last written to their status.",
    ["phase"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "agentry_operator_alert_webhooks_total",
    "Alert notifications by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
CLIENT_WAIT = Counter(
    "agentry_operator_client_throttled_seconds_total",
    "Seconds the operator's requests waited for its client-side rate limit (api QPS/burst).",
    registry=REGISTRY,
)
GUARDED = Gauge(
    "agentry_operator_guarded_agents",
    "Agents whose children's watch events are being followed (a running guard each).",
    registry=REGISTRY,
)
DRIFT_WAKEUPS = Counter(
    "agentry_operator_drift_wakeups_total",
    "Converges of an Agent started by a watch event on a drifted child, or by the safety net.",
    ["cause"],
    registry=REGISTRY,
)

_phases: dict[str, str] = {}


@contextmanager
def timed(step: str) -> Iterator[None]:
    """Count and time one step; an exception counts as an error and propagates."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(step).inc()
        RECONCILES.labels(step, "error").inc()
        raise
    else:
        RECONCILES.labels(step, "ok").inc()
    finally:
        DURATION.labels(step).observe(time.perf_counter() - started)


def set_phase(key: str, phase: str | None) -> None:
    """Track one Agent's phase (None when it is gone) and refresh the gauge."""
    if phase is None:
        _phases.pop(key, None)
    else:
        _phases[key] = phase
    counts: dict[str, int] = {}
    for value in _phases.values():
        counts[value] = counts.get(value, 0) + 1
    for name in ("Pending", "Running", "Degraded", "Suspended", "Failed"):
        AGENTS.labels(name).set(counts.get(name, 0))

"""Per-replica health and counters from the runtime's heartbeat Leases.

Each pod renews a Lease `<pod>-heartbeat` whose annotation `agentry.dev/heartbeat`
holds a compact JSON summary (docs/architecture.md, "Heartbeat"). `health` and
`metrics` read these directly, so they show every replica, not the operator's
worst-of summary, and work while the operator is down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import agents
from .timing import age_of

ANNOTATION = "agentry.dev/heartbeat"
COMPONENTS = ("state", "model", "disk", "encryption")
COUNTERS = ("requests", "ok", "degraded", "errors", "throttled", "rejected")


def lease_name(pod: str) -> str:
    return f"{pod}-heartbeat"


@dataclass
class Heartbeat:
    """One replica's last report, or the fact that there is none to read."""

    replica: str
    found: bool = False
    problem: str | None = None  # why the heartbeat could not be used, if so
    age_seconds: float | None = None  # since the Lease was last renewed
    stale: bool = False  # not renewed within its lease duration
    ready: bool | None = None
    circuit: str | None = None
    health: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    last_checkpoint: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    """The runtime's `state` summary: backend, sessions, rowsUnderOldKeys, activeKeyId."""

    def failing_components(self) -> dict[str, str]:
        """Component → reason for every component that is not `ok`."""
        failing = {}
        for name in COMPONENTS:
            value = self.health.get(name)
            if value is None:
                continue
            if value != "ok":
                reason = value.removeprefix("failed").lstrip(": ").strip()
                failing[name] = reason or "failed"
        return failing

    def problems(self) -> list[str]:
        """Everything that makes this replica count as failing, one phrase each."""
        if not self.found:
            return [self.problem or "no heartbeat"]
        found: list[str] = []
        if self.problem:
            found.append(self.problem)
        if self.stale:
            found.append(f"heartbeat stale (last renewed {int(self.age_seconds or 0)}s ago)")
        if self.ready is False:
            found.append("not ready")
        found.extend(f"{name}: {reason}" for name, reason in self.failing_components().items())
        return found


def parse_lease(replica: str, lease: dict[str, Any] | None, now: datetime) -> Heartbeat:
    """Read a heartbeat Lease (as the API returns it, camelCase) into a `Heartbeat`."""
    if lease is None:
        return Heartbeat(replica=replica, problem="no heartbeat yet")
    beat = Heartbeat(replica=replica, found=True)
    lease_spec = lease.get("spec") or {}
    beat.age_seconds = age_of(lease_spec.get("renewTime"), now)
    duration = lease_spec.get("leaseDurationSeconds")
    if beat.age_seconds is not None and isinstance(duration, int):
        beat.stale = beat.age_seconds > duration
    raw = (lease.get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
    if raw is None:
        beat.problem = f"Lease has no {ANNOTATION} annotation"
        return beat
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        beat.problem = f"unreadable {ANNOTATION} annotation"
        return beat
    if not isinstance(data, dict):
        beat.problem = f"unreadable {ANNOTATION} annotation"
        return beat
    if beat.age_seconds is None:
        beat.age_seconds = age_of(data.get("time"), now)
    beat.ready = data.get("ready") if isinstance(data.get("ready"), bool) else None
    beat.circuit = data.get("circuit") if isinstance(data.get("circuit"), str) else None
    beat.health = {k: str(v) for k, v in (data.get("health") or {}).items()}
    beat.metrics = dict(data.get("metrics") or {})
    beat.last_checkpoint = dict(data.get("lastCheckpoint") or {})
    beat.store = dict(data.get("state") or {})
    return beat


def store_summary(backend: str, beats: list[Heartbeat]) -> dict[str, Any]:
    """The state store as the replicas report it: on postgres every replica counts the same
    database (the largest, freshest count wins); on pvc and configmap each its own memory.
    `rowsUnderOldKeys` is None until a replica has reported it."""
    reports = [b.store for b in beats if b.found and b.store]
    sessions = [r["sessions"] for r in reports if isinstance(r.get("sessions"), int)]
    old_rows = [
        r["rowsUnderOldKeys"] for r in reports if isinstance(r.get("rowsUnderOldKeys"), int)
    ]
    if backend == "postgres":
        total = max(sessions) if sessions else None
    else:
        total = sum(sessions) if sessions else None
    return {
        "backend": backend,
        "sessions": total,
        "rowsUnderOldKeys": max(old_rows) if old_rows else None,
        "activeKeyIds": sorted({str(r["activeKeyId"]) for r in reports if r.get("activeKeyId")}),
    }


def for_agent(
    agent: dict[str, Any], leases: list[dict[str, Any]], now: datetime
) -> list[Heartbeat]:
    """One `Heartbeat` per replica that should run, from all Leases of the namespace.

    Leases of replicas beyond the desired count (left from a scale-down or a suspend)
    are ignored; a replica without a Lease is reported as such.
    """
    by_name = {agents.name_of(lease): lease for lease in leases}
    return [parse_lease(pod, by_name.get(lease_name(pod)), now) for pod in agents.pod_names(agent)]

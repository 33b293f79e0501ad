"""Turn what the operator observes into the Agent's status: phase, conditions, summaries.

Pure functions: the StatefulSet, the parsed heartbeats (docs/architecture.md,
"Heartbeat"), the previous status and the clock go in; the new status and the
transitions worth an Event come out. Conditions follow the Kubernetes API conventions
(lastTransitionTime only moves when the status of a condition changes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentry_operator import constants as c
from agentry_operator.models import CONDITION_MESSAGE_MAX, Agent

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
ALERTING = "Alerting"
CONDITION_TYPES = (READY, PROGRESSING, DEGRADED, ALERTING)
INVALID_SPEC = "InvalidSpec"
HEALTH_COMPONENTS = ("state", "model", "disk", "encryption", "tools")


@dataclass(frozen=True)
class Heartbeat:
    """One replica's heartbeat, as read from its Lease annotation."""

    pod: str
    time: datetime
    ready: bool
    circuit: str
    health: dict[str, str]
    metrics: dict[str, float]
    last_checkpoint: dict[str, Any] | None
    rows_under_old_keys: int | None = None
    """postgres: rows of the Agent sealed under a key other than the active one (None:
    not reported, as on pvc and configmap before their first checkpoint)."""


@dataclass(frozen=True)
class Blocked:
    """Why the operator cannot converge the Agent; shown as Ready=False with `reason`.

    `pods_serve`: the pods already running are left alone and keep serving (the keys are
    missing, or a roll is held), so the phase is Degraded rather than Failed.
    """

    reason: str
    message: str
    pods_serve: bool = False


@dataclass(frozen=True)
class Observation:
    """Everything the status is computed from."""

    statefulset: Mapping[str, Any] | None
    heartbeats: Sequence[Heartbeat]
    error_rate: float
    alerting: bool
    alert_message: str = ""
    blocked: Blocked | None = None  # the operator could not converge
    stale_heartbeats: Sequence[str] = ()
    """Pods that should run whose last heartbeat is too old (see `read_heartbeats`)."""


@dataclass
class StatusUpdate:
    """The new status and the transitions (type, reason, message) worth an Event."""

    status: dict[str, Any]
    transitions: list[tuple[str, str, str]] = field(default_factory=list)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_heartbeat(lease: Mapping[str, Any]) -> Heartbeat | None:
    """The heartbeat in a Lease, or None when it is missing or unreadable."""
    meta = lease.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(c.HEARTBEAT_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    moment = parse_time(data.get("time")) if isinstance(data, dict) else None
    if not isinstance(data, dict) or moment is None:
        return None
    pod = (lease.get("spec") or {}).get("holderIdentity") or str(meta.get("name", "")).removesuffix(
        "-heartbeat"
    )
    metrics = {
        k: float(v) for k, v in (data.get("metrics") or {}).items() if isinstance(v, int | float)
    }
    checkpoint = data.get("lastCheckpoint")
    old_rows = (data.get("state") or {}).get("rowsUnderOldKeys")
    return Heartbeat(
        pod=pod,
        time=moment,
        ready=bool(data.get("ready")),
        circuit=str(data.get("circuit", "closed")),
        health={k: str(v) for k, v in (data.get("health") or {}).items()},
        metrics=metrics,
        last_checkpoint=checkpoint if isinstance(checkpoint, dict) else None,
        rows_under_old_keys=old_rows if isinstance(old_rows, int) else None,
    )


def worst_health(heartbeats: Sequence[Heartbeat]) -> dict[str, str]:
    """Per component: the first failure over the replicas, else ok (unknown without data).
    A reported failure wins over a replica that does not report the component (an older
    runtime without ``tools``)."""
    out: dict[str, str] = {}
    for component in HEALTH_COMPONENTS:
        values = [hb.health.get(component, "unknown") for hb in heartbeats]
        failed = [v for v in values if v != "ok"]
        reported = [v for v in failed if v != "unknown"]
        out[component] = (reported or failed)[0] if failed else ("ok" if values else "unknown")
    return out


def metrics_summary(heartbeats: Sequence[Heartbeat], error_rate: float) -> dict[str, Any]:
    def total(key: str) -> int:
        return int(sum(hb.metrics.get(key, 0) for hb in heartbeats))

    return {
        "requests": total("requests"),
        "throttled": total("throttled"),
        "errors": total("errors"),
        "degraded": total("degraded"),
        "errorRate": round(error_rate, 4),
        "p95LatencyMs": max((hb.metrics.get("p95Ms", 0.0) for hb in heartbeats), default=0.0),
        "inputTokens": total("inputTokens"),
        "outputTokens": total("outputTokens"),
        "tokens": total("inputTokens") + total("outputTokens"),
        "toolCalls": total("toolCalls"),
    }


def newest_checkpoint(heartbeats: Sequence[Heartbeat]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    best_time: datetime | None = None
    for hb in heartbeats:
        cp = hb.last_checkpoint
        moment = parse_time(cp.get("time")) if cp else None
        if cp and moment and (best_time is None or moment > best_time):
            best, best_time = cp, moment
    if best is None:
        return None
    return {
        "time": best.get("time"),
        "generation": int(best.get("generation", 0)),
        "bytes": int(best.get("bytes", 0)),
        "keyId": str(best.get("keyId", "")),
    }


def condition(
    previous: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    value = "True" if status else "False"
    old = next((cond for cond in previous if cond.get("type") == type_), None)
    moved = old is None or old.get("status") != value
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:CONDITION_MESSAGE_MAX],
        "observedGeneration": generation,
        "lastTransitionTime": rfc3339(now) if moved or old is None else old["lastTransitionTime"],
    }


def compute_status(
    agent: Agent,
    observation: Observation,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> StatusUpdate:
    """The whole status for one Agent, and the transitions since `previous`."""
    previous = previous or {}
    prev_conditions: list[Mapping[str, Any]] = list(previous.get("conditions") or [])
    spec = agent.spec
    generation = agent.metadata.generation
    desired = 0 if spec.suspend else spec.replicas
    sts = observation.statefulset or {}
    sts_status = sts.get("status") or {}
    current = int(sts_status.get("replicas") or 0)
    ready = int(sts_status.get("readyReplicas") or 0)
    updated = int(sts_status.get("updatedReplicas") or 0)
    sts_generation = int((sts.get("metadata") or {}).get("generation") or 0)
    observed = int(sts_status.get("observedGeneration") or 0)
    rolling = bool(sts) and (
        observed < sts_generation
        or current != desired
        or (desired > 0 and updated < desired)
        or sts_status.get("currentRevision", "") != sts_status.get("updateRevision", "")
    )
    beats = observation.heartbeats
    stale = sorted(observation.stale_heartbeats)
    model_down = any(hb.circuit != "closed" for hb in beats)
    unhealthy = [f"{hb.pod}: {k} {v}" for hb in beats for k, v in hb.health.items() if v != "ok"]

    blocked = observation.blocked
    if blocked and not blocked.pods_serve:
        phase = "Failed"
    elif blocked:
        phase = "Degraded"
    elif spec.suspend:
        # Only once the StatefulSet exists and reports no pods: before the first converge
        # there is nothing to show, and "Suspended" would claim the children are in place.
        phase = "Suspended" if sts and current == 0 else "Pending"
    elif desired > 0 and ready < desired:
        # A replica that reports a failing component (say, state it cannot decrypt) will not
        # become ready by waiting: show it as Degraded, not as still starting.
        phase = "Degraded" if unhealthy else "Pending"
    elif model_down or unhealthy or stale:
        phase = "Degraded"
    else:
        phase = "Running"

    if blocked:
        ready_cond = (False, blocked.reason, blocked.message)
    elif spec.suspend:
        ready_cond = (False, "Suspended", "the Agent is suspended")
    elif desired == 0:
        ready_cond = (True, "ScaledToZero", "replicas is 0")
    elif ready >= desired:
        ready_cond = (True, "AllReplicasReady", f"{ready}/{desired} replicas ready")
    elif unhealthy:
        ready_cond = (False, "ReplicasUnhealthy", "; ".join(unhealthy)[:512])
    else:
        ready_cond = (False, "ReplicasNotReady", f"{ready}/{desired} replicas ready")

    if spec.suspend and current > 0:
        progressing = (True, "Suspending", f"{current} pods still stopping after checkpoint")
    elif rolling or not sts:
        progressing = (True, "RollingOut", f"{updated}/{desired} replicas updated")
    else:
        progressing = (False, "Reconciled", "the StatefulSet matches the spec")

    if model_down:
        degraded = (True, "ModelUnavailable", "circuit open: replies come from the fallback")
    elif unhealthy:
        degraded = (True, "HealthCheckFailed", "; ".join(unhealthy)[:512])
    elif stale:
        # The pod may well answer, but it cannot reach the API server (its state there,
        # its Lease) or is hung: what it reports cannot be seen.
        message = f"no recent heartbeat from {', '.join(stale)}"
        degraded = (True, "HeartbeatStale", message[:512])
    else:
        degraded = (False, "Healthy", "all reporting replicas are healthy")

    alerting = (
        (True, "ErrorRateHigh", observation.alert_message)
        if observation.alerting
        else (False, "ErrorRateNormal", observation.alert_message or "error rate below threshold")
    )

    conditions = [
        condition(prev_conditions, type_, value, reason, message, generation, now)
        for type_, (value, reason, message) in zip(
            CONDITION_TYPES, (ready_cond, progressing, degraded, alerting), strict=True
        )
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "replicas": current,
        "readyReplicas": ready,
        "ready": f"{ready}/{desired}",
        "selector": ",".join(f"{k}={v}" for k, v in c.selector_labels(agent.name).items()),
        "conditions": conditions,
        "health": worst_health(beats),
        "metrics": metrics_summary(beats, observation.error_rate),
        "endpoint": f"http://{agent.name}.{agent.namespace}.svc:{c.SERVICE_PORT}",
        # Always written, empty too: a status patch merges, and an absent list would leave
        # the last stale pods in place after they recovered.
        "staleHeartbeats": stale,
    }
    checkpoint = newest_checkpoint(beats) or previous.get("lastCheckpoint")
    if checkpoint:
        status["lastCheckpoint"] = checkpoint

    update = StatusUpdate(status)
    if blocked and _is_news(prev_conditions, blocked):
        update.transitions.append(("Warning", blocked.reason, blocked.message))
    if previous.get("phase") != phase:
        update.transitions.append(("Normal", "PhaseChanged", f"phase is now {phase}"))
    for cond in conditions:
        old = next((x for x in prev_conditions if x.get("type") == cond["type"]), None)
        announced = blocked is not None and cond["type"] == READY
        if old is not None and old.get("status") != cond["status"] and not announced:
            bad = cond["type"] in (DEGRADED, ALERTING) and cond["status"] == "True"
            kind = "Warning" if bad else "Normal"
            update.transitions.append(
                (kind, cond["reason"], f"{cond['type']}={cond['status']}: {cond['message']}")
            )
    return update


def _is_news(previous: Sequence[Mapping[str, Any]], blocked: Blocked) -> bool:
    """A Warning Event only when the Ready condition did not already say this."""
    old = next((cond for cond in previous if cond.get("type") == READY), None)
    return old is None or (old.get("reason"), old.get("message")) != (
        blocked.reason,
        blocked.message,
    )


def invalid_spec_status(
    previous: Mapping[str, Any] | None, message: str, generation: int, now: datetime
) -> StatusUpdate:
    """Failed with Ready=False, reason InvalidSpec, for a spec the models refuse although
    the CRD let it in. Retrying cannot help: the handler records this once and waits for
    the spec to change. The other conditions keep what they last said."""
    prev_conditions: list[Mapping[str, Any]] = list((previous or {}).get("conditions") or [])
    ready = condition(prev_conditions, READY, False, INVALID_SPEC, message, generation, now)
    others = [dict(cond) for cond in prev_conditions if cond.get("type") != READY]
    update = StatusUpdate(
        {"phase": "Failed", "observedGeneration": generation, "conditions": [ready, *others]}
    )
    old = next((cond for cond in prev_conditions if cond.get("type") == READY), None)
    if old is None or (old.get("reason"), old.get("message")) != (INVALID_SPEC, ready["message"]):
        update.transitions.append(("Warning", INVALID_SPEC, ready["message"]))
    return update


def refused_generation(status: Mapping[str, Any] | None) -> int | None:
    """The generation whose spec the models refused, while Ready says InvalidSpec."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == READY and cond.get("reason") == INVALID_SPEC:
            generation = cond.get("observedGeneration")
            return int(generation) if generation is not None else None
    return None


def spec_is_invalid(status: Mapping[str, Any] | None, generation: int | None) -> bool:
    """The status says this very generation of the spec was refused (see above)."""
    refused = refused_generation(status)
    return refused is not None and refused == generation

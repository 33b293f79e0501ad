"""Pod status from what the node knows about its containers: phase, conditions, IPs and
containerStatuses, shaped like the kubelet's so kubectl, the endpoints controller and
the StatefulSet controller read it unchanged. Pure; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerSnapshot:
    """One container as the node sees it at a moment."""

    name: str
    image: str = ""
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    signal: int = 0
    container_id: str = ""
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    last_terminated: Json | None = None
    ever_started: bool = field(default=False)

    def terminated_state(self) -> Json:
        state: Json = {
            "exitCode": self.exit_code,
            "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
        }
        if self.signal:
            state["signal"] = self.signal
        if self.message:
            state["message"] = self.message
        if self.started_at:
            state["startedAt"] = rfc3339(self.started_at)
        if self.finished_at:
            state["finishedAt"] = rfc3339(self.finished_at)
        if self.container_id:
            state["containerID"] = self.container_id
        return state

    def to_status(self) -> Json:
        if self.state == "running":
            state: Json = {"running": {"startedAt": rfc3339(self.started_at or datetime.now(UTC))}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_state()}
        else:
            waiting: Json = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: Json = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started if self.state == "running" else False,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def pod_phase(
    restart_policy: str,
    init: Sequence[ContainerSnapshot],
    containers: Sequence[ContainerSnapshot],
) -> str:
    """Pending until every container has started once; then Running until all stopped for
    good; then Succeeded or Failed by exit codes (the kubelet's getPhase, simplified)."""
    for c in init:
        if c.state == "terminated" and c.exit_code != 0 and restart_policy == "Never":
            return "Failed"
        if not (c.state == "terminated" and c.exit_code == 0):
            return "Pending"
    if any(not c.ever_started for c in containers):
        return "Pending"
    if any(c.state != "terminated" for c in containers):
        return "Running"
    failed = any(c.exit_code != 0 for c in containers)
    if restart_policy == "Always" or (restart_policy == "OnFailure" and failed):
        return "Running"
    return "Failed" if failed else "Succeeded"


def _condition(
    kind: str, ok: bool, now: datetime, previous: Json, reason: str = "", msg: str = ""
) -> Json:
    status = "True" if ok else "False"
    old = previous.get(kind) or {}
    since = old.get("lastTransitionTime") if old.get("status") == status else None
    cond: Json = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since or rfc3339(now),
    }
    if not ok and reason:
        cond["reason"] = reason
        if msg:
            cond["message"] = msg
    return cond


def build_pod_status(
    pod: Json,
    init: Sequence[ContainerSnapshot],
    containers: Sequence[ContainerSnapshot],
    pod_ip: str,
    host_ip: str,
    start_time: datetime,
    now: datetime,
) -> Json:
    """The `status` the node writes for a pod it runs."""
    spec = pod.get("spec") or {}
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    phase = pod_phase(spec.get("restartPolicy", "Always"), init, containers)
    initialized = all(c.state == "terminated" and c.exit_code == 0 for c in init)
    unready = [c.name for c in containers if not c.ready]
    if phase in ("Succeeded", "Failed"):
        unready = [c.name for c in containers]
    names = " ".join(unready)
    reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    msg = f"containers with unready status: [{names}]"
    conditions = [
        _condition("PodReadyToStartContainers", bool(pod_ip), now, previous),
        _condition(
            "Initialized",
            initialized,
            now,
            previous,
            "ContainersNotInitialized",
            "containers with incomplete status: "
            f"[{' '.join(c.name for c in init if c.state != 'terminated')}]",
        ),
        _condition("Ready", not unready, now, previous, reason, msg),
        _condition("ContainersReady", not unready, now, previous, reason, msg),
        _condition("PodScheduled", True, now, previous),
    ]
    status: Json = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": rfc3339(start_time),
        "containerStatuses": [c.to_status() for c in containers],
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if init:
        status["initContainerStatuses"] = [c.to_status() for c in init]
    return status

"""Status from observations: phase, conditions with stable transition times, summaries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from agentry_operator.models import Agent
from agentry_operator.status import (
    Blocked,
    Heartbeat,
    Observation,
    compute_status,
    parse_heartbeat,
)

from tests.support.agents import shared_state

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def agent(**spec: Any) -> Agent:
    if spec.get("replicas", 1) > 1:
        spec.setdefault("state", shared_state())  # more than one replica needs postgres
    return Agent.from_body(
        {"metadata": {"name": "bot", "namespace": "ns", "generation": 3}, "spec": spec}
    )


def sts(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "observedGeneration": 1,
        },
    }


def beat(pod: str, requests: int = 10, circuit: str = "closed", model: str = "ok") -> Heartbeat:
    return Heartbeat(
        pod=pod,
        time=NOW,
        ready=True,
        circuit=circuit,
        health={"state": "ok", "model": model, "disk": "ok", "encryption": "ok"},
        metrics={"requests": requests, "errors": 1, "throttled": 2, "degraded": 0, "p95Ms": 7.0},
        last_checkpoint={
            "time": "2026-11-26T09:59:00Z",
            "generation": 4,
            "bytes": 10,
            "keyId": "k1",
        },
    )


def observe(a: Agent, statefulset: Any, beats: list[Heartbeat], **kw: Any) -> Observation:
    return Observation(
        statefulset=statefulset, heartbeats=beats, error_rate=0.0, alerting=False, **kw
    )


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_all_replicas_ready_and_healthy_is_running() -> None:
    a = agent(replicas=2)
    update = compute_status(a, observe(a, sts(2, 2), [beat("bot-0"), beat("bot-1")]), None, NOW)
    status = update.status
    assert status["phase"] == "Running"
    assert status["ready"] == "2/2"
    assert status["metrics"]["requests"] == 20
    assert status["lastCheckpoint"]["generation"] == 4
    assert cond(status, "Ready")["status"] == "True"
    assert cond(status, "Ready")["observedGeneration"] == 3
    assert status["observedGeneration"] == 3


def test_missing_pods_are_pending_and_progressing() -> None:
    a = agent(replicas=2)
    status = compute_status(a, observe(a, sts(2, 1), []), None, NOW).status
    assert status["phase"] == "Pending"
    assert cond(status, "Ready")["reason"] == "ReplicasNotReady"


def test_a_replica_that_cannot_read_its_state_is_degraded_with_the_reason_not_pending() -> None:
    a = agent(replicas=1)
    broken = beat("bot-0")
    broken.health["state"] = "failed: checkpoint sealed with key id k1, not in the key ring"
    status = compute_status(a, observe(a, sts(1, 0), [broken]), None, NOW).status
    assert status["phase"] == "Degraded"
    assert cond(status, "Ready")["reason"] == "ReplicasUnhealthy"
    assert "not in the key ring" in cond(status, "Ready")["message"]
    assert cond(status, "Degraded")["reason"] == "HealthCheckFailed"


def test_an_open_circuit_is_degraded_but_ready() -> None:
    a = agent(replicas=1)
    status = compute_status(
        a, observe(a, sts(1, 1), [beat("bot-0", circuit="open")]), None, NOW
    ).status
    assert status["phase"] == "Degraded"
    assert cond(status, "Degraded")["reason"] == "ModelUnavailable"
    assert cond(status, "Ready")["status"] == "True"


def test_suspended_only_once_the_pods_are_gone() -> None:
    a = agent(replicas=2, suspend=True)
    stopping = compute_status(a, observe(a, sts(2, 2), []), None, NOW).status
    assert stopping["phase"] != "Suspended"
    assert cond(stopping, "Progressing")["reason"] == "Suspending"
    gone = compute_status(a, observe(a, sts(0, 0), []), stopping, NOW).status
    assert gone["phase"] == "Suspended"


def test_a_suspended_agent_is_not_suspended_before_its_statefulset_exists() -> None:
    a = agent(replicas=1, suspend=True)
    status = compute_status(a, observe(a, None, []), None, NOW).status
    assert status["phase"] == "Pending"
    assert cond(status, "Progressing")["status"] == "True"


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    a = agent(replicas=1)
    first = compute_status(a, observe(a, sts(1, 0), []), None, NOW).status
    later = NOW + timedelta(minutes=5)
    same = compute_status(a, observe(a, sts(1, 0), []), first, later).status
    assert cond(same, "Ready")["lastTransitionTime"] == cond(first, "Ready")["lastTransitionTime"]
    ready = compute_status(a, observe(a, sts(1, 1), [beat("bot-0")]), same, later).status
    assert cond(ready, "Ready")["lastTransitionTime"] == "2026-11-26T10:05:00Z"


def test_transitions_produce_events_and_steady_state_does_not() -> None:
    a = agent(replicas=1)
    first = compute_status(a, observe(a, sts(1, 0), []), None, NOW)
    second = compute_status(a, observe(a, sts(1, 1), [beat("bot-0")]), first.status, NOW)
    assert ("Normal", "PhaseChanged", "phase is now Running") in second.transitions
    third = compute_status(a, observe(a, sts(1, 1), [beat("bot-0")]), second.status, NOW)
    assert third.transitions == []


def test_alerting_shows_as_a_condition_with_a_warning_event() -> None:
    a = agent(replicas=1)
    calm = compute_status(a, observe(a, sts(1, 1), [beat("bot-0")]), None, NOW)
    alarm = Observation(
        statefulset=sts(1, 1),
        heartbeats=[beat("bot-0")],
        error_rate=0.5,
        alerting=True,
        alert_message="error rate 50%",
    )
    update = compute_status(a, alarm, calm.status, NOW)
    assert cond(update.status, "Alerting")["reason"] == "ErrorRateHigh"
    assert any(t[0] == "Warning" and t[1] == "ErrorRateHigh" for t in update.transitions)


def test_a_failure_to_converge_is_failed_with_the_reason() -> None:
    a = agent(replicas=1)
    obs = observe(a, None, [], blocked=Blocked("NameConflict", "Role/bot (not ours)"))
    update = compute_status(a, obs, None, NOW)
    assert update.status["phase"] == "Failed"
    assert cond(update.status, "Ready")["reason"] == "NameConflict"
    assert ("Warning", "NameConflict", "Role/bot (not ours)") in update.transitions


def test_a_block_that_leaves_the_pods_serving_is_degraded_and_warned_once() -> None:
    a = agent(replicas=1)
    blocked = Blocked("KeysMissing", "Secret bot-keys is missing", pods_serve=True)
    first = compute_status(a, observe(a, sts(1, 1), [beat("bot-0")], blocked=blocked), None, NOW)
    assert first.status["phase"] == "Degraded"
    assert cond(first.status, "Ready")["status"] == "False"
    assert [t for t in first.transitions if t[0] == "Warning"] == [
        ("Warning", "KeysMissing", "Secret bot-keys is missing")
    ]
    again = compute_status(
        a, observe(a, sts(1, 1), [beat("bot-0")], blocked=blocked), first.status, NOW
    )
    assert not [t for t in again.transitions if t[0] == "Warning"]


def test_the_heartbeat_annotation_of_the_contract_is_parsed() -> None:
    annotation = {
        "v": 1,
        "time": "2026-11-26T10:00:00Z",
        "ready": True,
        "circuit": "closed",
        "health": {"state": "ok", "model": "failed: 401", "disk": "ok", "encryption": "ok"},
        "metrics": {
            "requests": 120,
            "ok": 110,
            "degraded": 4,
            "errors": 6,
            "throttled": 9,
            "rejected": 0,
            "p50Ms": 3.1,
            "p95Ms": 12.0,
        },
        "lastCheckpoint": {
            "time": "2026-11-26T09:59:00Z",
            "generation": 7,
            "bytes": 4096,
            "keyId": "k1",
        },
    }
    lease = {
        "metadata": {
            "name": "bot-0-heartbeat",
            "annotations": {"agentry.dev/heartbeat": json.dumps(annotation)},
        },
        "spec": {"holderIdentity": "bot-0"},
    }
    hb = parse_heartbeat(lease)
    assert hb is not None
    assert hb.pod == "bot-0"
    assert hb.metrics["throttled"] == 9
    assert hb.health["model"] == "failed: 401"


def test_an_unreadable_heartbeat_is_ignored() -> None:
    lease = {"metadata": {"annotations": {"agentry.dev/heartbeat": "{not json"}}}
    assert parse_heartbeat(lease) is None
    assert parse_heartbeat({"metadata": {}}) is None


def test_token_totals_are_summed_over_the_replicas_and_a_down_tool_server_degrades() -> None:
    beats = [beat("bot-0"), beat("bot-1")]
    for n, hb in enumerate(beats):
        hb.metrics.update({"inputTokens": 100 * (n + 1), "outputTokens": 10, "toolCalls": n})
    beats[1].health["tools"] = "failed: search ConnectError"
    status = compute_status(agent(replicas=2), observe(agent(), sts(2, 2), beats), None, NOW)
    body = status.status
    assert body["metrics"]["inputTokens"] == 300
    assert body["metrics"]["tokens"] == 320  # the Tokens printer column
    assert body["metrics"]["toolCalls"] == 1
    assert body["health"]["tools"] == "failed: search ConnectError"
    assert body["phase"] == "Degraded"
    assert cond(body, "Ready")["status"] == "True"  # still serving: a tool is not the pod

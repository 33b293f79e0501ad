"""Pod status as the node reports it: phase by restart policy, Ready conditions that keep
their transition time, container states with restart counts and the last termination."""

from __future__ import annotations

from datetime import UTC, datetime

from agentry_cluster.node.status import ContainerSnapshot, build_pod_status, pod_phase

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
POD = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Always"}}


def running(name: str = "c", ready: bool = True) -> ContainerSnapshot:
    return ContainerSnapshot(name, state="running", reason="", started_at=T0, ready=ready,
                             started=True, ever_started=True)  # fmt: skip


def exited(code: int) -> ContainerSnapshot:
    return ContainerSnapshot("c", state="terminated", reason="", exit_code=code,
                             ever_started=True, started_at=T0, finished_at=T1)  # fmt: skip


def conditions(status: dict[str, object]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}  # type: ignore[attr-defined]


def test_a_pod_is_pending_until_its_containers_start() -> None:
    assert pod_phase("Always", [], [ContainerSnapshot("c")]) == "Pending"
    assert pod_phase("Always", [], [running()]) == "Running"


def test_the_phase_after_exit_follows_the_restart_policy() -> None:
    assert pod_phase("Always", [], [exited(0)]) == "Running"
    assert pod_phase("OnFailure", [], [exited(0)]) == "Succeeded"
    assert pod_phase("OnFailure", [], [exited(1)]) == "Running"
    assert pod_phase("Never", [], [exited(1)]) == "Failed"


def test_a_failed_init_container_holds_the_pod_pending_or_fails_it() -> None:
    assert pod_phase("Always", [exited(1)], [ContainerSnapshot("c")]) == "Pending"
    assert pod_phase("Never", [exited(1)], [ContainerSnapshot("c")]) == "Failed"


def test_ready_pods_report_ip_conditions_and_container_state() -> None:
    status = build_pod_status(POD, [], [running()], "10.244.0.5", "10.244.0.1", T0, T1)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.0.5"
    assert status["podIPs"] == [{"ip": "10.244.0.5"}]
    assert status["hostIP"] == "10.244.0.1"
    assert conditions(status) == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True",
    }  # fmt: skip
    (c,) = status["containerStatuses"]
    assert c["ready"] is True
    assert c["started"] is True
    assert c["state"] == {"running": {"startedAt": "2026-01-01T00:00:00Z"}}


def test_an_unready_container_names_itself_in_the_ready_condition() -> None:
    status = build_pod_status(POD, [], [running("web", ready=False)], "ip", "h", T0, T1)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [web]"


def test_a_condition_keeps_its_transition_time_while_unchanged() -> None:
    first = build_pod_status(POD, [], [running()], "ip", "h", T0, T0)
    later = build_pod_status(dict(POD, status=first), [], [running()], "ip", "h", T0, T1)
    assert first["conditions"] == later["conditions"]


def test_a_restarted_container_shows_its_count_and_last_termination() -> None:
    c = running()
    c.restart_count = 2
    c.last_terminated = exited(3).terminated_state()
    status = c.to_status()
    assert status["restartCount"] == 2
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"


def test_a_container_waiting_in_back_off_says_so() -> None:
    c = ContainerSnapshot("c", state="waiting", reason="CrashLoopBackOff", message="back-off 10s")
    assert c.to_status()["state"] == {
        "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}
    }

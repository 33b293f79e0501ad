"""`start`, `stop`, `restart`: the change is made, and the command waits until it took effect."""

from __future__ import annotations

import json


def report(fake_cluster, phase, *, ready=0, observed=None):
    """A reaction: the operator writes status for the Agent's current generation."""

    def apply() -> None:
        agent = fake_cluster.agents["demo"]
        status = agent["status"]
        status["phase"] = phase
        status["readyReplicas"] = ready
        status["observedGeneration"] = observed or agent["metadata"]["generation"]

    return apply


def test_stop_sets_suspend_and_waits_for_phase_suspended(kubectl_agent, fake_cluster, clock):
    clock.reactions += [lambda: None, report(fake_cluster, "Suspended")]

    result = kubectl_agent("stop", "demo")

    assert result.code == 0
    assert fake_cluster.patches == [("Agent", "demo", {"spec": {"suspend": True}})]
    assert result.out.strip() == "Agent demo stopped: phase Suspended, 0/0 ready"
    assert len(clock.slept) == 2


def test_stop_does_not_accept_the_old_phase_of_the_previous_generation(
    kubectl_agent, fake_cluster, clock
):
    clock.reactions += [
        report(fake_cluster, "Suspended", observed=3),
        report(fake_cluster, "Suspended"),
    ]

    kubectl_agent("stop", "demo")

    assert len(clock.slept) == 2


def test_start_resumes_and_waits_for_running(kubectl_agent, fake_cluster, clock):
    fake_cluster.agents["demo"]["spec"]["suspend"] = True
    fake_cluster.agents["demo"]["status"]["phase"] = "Suspended"
    clock.reactions.append(report(fake_cluster, "Running", ready=2))

    result = kubectl_agent("start", "demo", "-o", "json")

    document = json.loads(result.out)
    assert result.code == 0
    assert fake_cluster.patches == [("Agent", "demo", {"spec": {"suspend": False}})]
    assert (document["phase"], document["readyReplicas"], document["changed"]) == (
        "Running",
        2,
        True,
    )


def test_start_accepts_degraded_as_running_with_a_failing_model(kubectl_agent, fake_cluster, clock):
    fake_cluster.agents["demo"]["spec"]["suspend"] = True
    clock.reactions.append(report(fake_cluster, "Degraded", ready=2))

    assert kubectl_agent("start", "demo").code == 0


def test_start_of_a_running_agent_changes_nothing(kubectl_agent, fake_cluster, clock):
    result = kubectl_agent("start", "demo")

    assert result.code == 0
    assert fake_cluster.patches == []
    assert "already started" in result.out
    assert clock.slept == []


def test_stop_with_no_wait_returns_after_the_patch(kubectl_agent, fake_cluster, clock):
    result = kubectl_agent("stop", "demo", "--no-wait")

    assert result.code == 0
    assert result.out.strip() == "Agent demo: stop requested"
    assert clock.slept == []


def test_stop_times_out_with_exit_1_and_says_what_it_saw(kubectl_agent, fake_cluster, clock):
    result = kubectl_agent("stop", "demo", "--timeout", "10s")

    assert result.code == 1
    assert result.err.startswith(
        "error: timed out after 10s waiting for Agent demo to reach phase Suspended"
    )
    assert "the operator has not yet seen the change" in result.err
    assert sum(clock.slept) == 10


def test_start_fails_at_once_when_the_agent_fails(kubectl_agent, fake_cluster, clock):
    fake_cluster.agents["demo"]["spec"]["suspend"] = True
    clock.reactions.append(report(fake_cluster, "Failed"))

    result = kubectl_agent("start", "demo")

    assert result.code == 1
    assert result.err == "error: Agent demo failed to start: 2 of 2 replicas ready\n"


def test_restart_stamps_the_pod_template_like_rollout_restart(kubectl_agent, fake_cluster, clock):
    def roll() -> None:
        status = fake_cluster.statefulsets["demo"]["status"]
        status.update(observedGeneration=6, updateRevision="demo-6c1", currentRevision="demo-6c1")

    clock.reactions.append(roll)

    result = kubectl_agent("restart", "demo")

    kind, name, patch = fake_cluster.patches[0]
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert (kind, name) == ("StatefulSet", "demo")
    assert annotations == {"agentry.dev/restartedAt": "2026-11-26T10:00:00Z"}
    assert result.code == 0
    assert result.out.strip() == "Agent demo restarted: 2/2 ready"


def test_restart_waits_until_every_replica_is_updated_and_ready(kubectl_agent, fake_cluster, clock):
    status = fake_cluster.statefulsets["demo"]["status"]
    clock.reactions += [
        lambda: status.update(observedGeneration=6, updateRevision="demo-6c1", updatedReplicas=1),
        lambda: status.update(updatedReplicas=2, readyReplicas=1),
        lambda: status.update(readyReplicas=2, currentRevision="demo-6c1"),
    ]

    assert kubectl_agent("restart", "demo").code == 0
    assert len(clock.slept) == 3


def test_restart_of_a_suspended_agent_is_refused(kubectl_agent, fake_cluster):
    fake_cluster.agents["demo"]["spec"]["suspend"] = True

    result = kubectl_agent("restart", "demo")

    assert result.code == 1
    assert "is suspended: nothing to restart" in result.err
    assert fake_cluster.patches == []


def test_restart_without_a_statefulset_names_what_is_missing(kubectl_agent, fake_cluster):
    fake_cluster.statefulsets.clear()

    result = kubectl_agent("restart", "demo", "--no-wait")

    assert result.code == 3
    assert result.err == 'error: StatefulSet "demo" not found in namespace "team-a"\n'

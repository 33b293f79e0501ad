"""Probe settings and thresholds, restart policy and crash-loop back-off: what turns probe
results into Ready and restarts, and how long a crashing container waits."""

from __future__ import annotations

import pytest
from agentry_cluster.node.probes import ProbeSpec, ProbeState, next_delay, parse_probe
from agentry_cluster.node.restarts import BackOff, should_restart

CONTAINER = {"ports": [{"name": "http", "containerPort": 8080}]}


def test_an_http_probe_resolves_its_named_port_and_takes_api_defaults() -> None:
    spec = parse_probe({"httpGet": {"path": "/readyz", "port": "http"}}, CONTAINER)
    assert (spec.action, spec.port, spec.path) == ("http", 8080, "/readyz")
    assert (spec.period, spec.timeout, spec.failure_threshold) == (10.0, 1.0, 3)


def test_a_probe_naming_an_undeclared_port_is_rejected() -> None:
    with pytest.raises(ValueError, match="'metrics'"):
        parse_probe({"tcpSocket": {"port": "metrics"}}, CONTAINER)


def test_a_probe_fails_only_after_failure_threshold_consecutive_failures() -> None:
    state = ProbeState(ProbeSpec("http", failure_threshold=3))
    state.record(True)
    assert state.result is True
    assert not state.record(False)
    assert not state.record(False)
    assert state.record(False)
    assert state.result is False


def test_a_success_resets_the_failure_count() -> None:
    state = ProbeState(ProbeSpec("http", failure_threshold=2))
    for ok in (True, False, True, False):
        state.record(ok)
    assert state.result is True


def test_success_threshold_needs_consecutive_successes() -> None:
    state = ProbeState(ProbeSpec("http", success_threshold=2))
    state.record(True)
    assert state.result is None
    state.record(True)
    assert state.result is True


def test_probes_wait_the_initial_delay_then_the_period() -> None:
    state = ProbeState(ProbeSpec("http", initial_delay=5, period=10))
    assert next_delay(state, "liveness") == 5
    state.record(True)
    assert next_delay(state, "liveness") == 10


def test_readiness_probes_eagerly_until_the_first_success() -> None:
    state = ProbeState(ProbeSpec("http", period=10))
    state.record(False)
    assert next_delay(state, "readiness") == 0.5
    state.record(True)
    assert next_delay(state, "readiness") == 10


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False),
     ("OnFailure", 2, True), ("Never", 1, False)],
)  # fmt: skip
def test_restart_policy_decides_which_exits_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_back_off_restarts_at_once_then_doubles_to_five_minutes() -> None:
    backoff = BackOff(base=10)
    delays = [backoff.next_delay(ran_for=1) for _ in range(8)]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_a_long_run_resets_the_back_off() -> None:
    backoff = BackOff(base=10)
    for _ in range(4):
        backoff.next_delay(ran_for=1)
    assert backoff.next_delay(ran_for=601) == 0
    assert backoff.next_delay(ran_for=1) == 10

"""End to end: drift in an Agent's children is put back within seconds because the
operator watches them (by label), not because a timer polls them. A suspended Agent keeps
it cheap: its children exist, no pod runs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.agents import apply_agent
from tests.support.e2e import get_json, wait_for

pytestmark = pytest.mark.e2e

RELEASE_NS = "agentry-system"
# The target is 5 s on a quiet machine; this shared 2-core one runs kubectl in
# well over a second at times, so the test allows some slack and reports the figure.
PUT_BACK_SECONDS = 8.0


def _uid(operator: Any, kind: str, name: str, namespace: str) -> str | None:
    obj = get_json(operator, kind, name, "-n", namespace)
    return str(obj["metadata"]["uid"]) if obj else None


def test_a_deleted_child_service_and_configmap_come_back_within_seconds_from_watch_events(
    operator: Any, namespace: str
) -> None:
    apply_agent(operator, "watched", namespace, {"suspend": True})
    wait_for(
        lambda: (
            (get_json(operator, "agents.agentry.dev", "watched", "-n", namespace) or {})
            .get("status", {})
            .get("phase")
            == "Suspended"
        ),
        120,
        "Agent watched Suspended",
    )
    took = {}
    for kind, name in (("service", "watched"), ("configmap", "watched-config")):
        before = _uid(operator, kind, name, namespace)
        started = time.monotonic()
        operator.kubectl("delete", kind, name, "-n", namespace, "--wait=false")
        wait_for(
            lambda kind=kind, name=name, before=before: (
                _uid(operator, kind, name, namespace) not in (None, before)
            ),
            60,
            f"{kind}/{name} re-created",
            interval=0.2,
        )
        took[kind] = time.monotonic() - started
    assert max(took.values()) < PUT_BACK_SECONDS, took
    # The watch, not the safety net (10 s in this suite), put them back: the operator
    # logs which child's event woke the Agent.
    logs = operator.kubectl(
        "logs", "-n", RELEASE_NS, "-l", "app.kubernetes.io/name=agentry-operator", "--tail=-1"
    ).stdout
    for kind, name in (("Service", "watched"), ("ConfigMap", "watched-config")):
        assert f"{kind} {namespace}/{name} drifted (deleted)" in logs, f"{kind}: {took}"

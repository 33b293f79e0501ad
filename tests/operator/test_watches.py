"""Drift learned from watches, against kmock: with the safety net an hour away, a deleted
or edited child comes back because its watch event woke the Agent's guard (or, deleted
before the guard started, because the guard's first count of the children seen missed
it); the operator's own writes wake nothing; the key Secret, which is never watched, is
checked by the safety net's read by name. The watches are the operator's own streams
(watches.py): they end with the operator, and read an event of any length."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agentry_operator import metrics
from agentry_operator.kube import Kube
from agentry_operator.settings import OperatorSettings

from tests.operator.conftest import WebhookSink, running_operator
from tests.operator.test_lifecycle import AGENTS, agent

CONFIGMAPS = "v1/configmaps"
ROLES = "rbac.authorization.k8s.io/v1/roles"


def wakeups(cause: str) -> float:
    return metrics.DRIFT_WAKEUPS.labels(cause)._value.get()


@pytest.fixture
async def watching_only(
    operator_settings: OperatorSettings, webhook: WebhookSink
) -> AsyncIterator[None]:
    settings = operator_settings.model_copy(update={"drift_interval_seconds": 3600})
    async with running_operator(settings, webhook):
        yield


async def converged(api: Any, eventually: Any) -> None:
    """Agent bot converged and its guard running (kmock replays the create event, and a
    replayed create handler would put back what the test changes, hiding the watch)."""
    guarded = metrics.GUARDED._value.get()
    await api.create(AGENTS, agent(replicas=1))
    assert await eventually(lambda: api.get(AGENTS, "ns", "bot")["status"]["phase"])
    assert await eventually(lambda: metrics.GUARDED._value.get() > guarded)
    await asyncio.sleep(0.5)  # the replayed create, if any, is over


async def test_deleted_and_edited_children_come_back_from_their_watch_events(
    api: Any, watching_only: None, eventually: Any
) -> None:
    await converged(api, eventually)
    before = wakeups("watch")
    # An edit: only a watch event can tell (the guard's start check counts names).
    rules = api.get(ROLES, "ns", "bot")["rules"]
    await api.patch(ROLES, "ns", "bot", {"rules": []})
    assert await eventually(lambda: api.get(ROLES, "ns", "bot")["rules"] == rules, within=8)
    assert wakeups("watch") > before
    await api.delete("v1/services", "ns", "bot")
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"), within=5)
    await api.delete(CONFIGMAPS, "ns", "bot-config")
    assert await eventually(lambda: api.get(CONFIGMAPS, "ns", "bot-config"), within=5)


async def test_the_operators_own_writes_wake_no_guard(
    api: Any, watching_only: None, eventually: Any
) -> None:
    before = wakeups("watch")
    await converged(api, eventually)
    # Its children were created (ADDED events) and the status written; a second Agent
    # adds more events of the same kind, none of them drift.
    await api.create(AGENTS, agent("other", replicas=1))
    assert await eventually(lambda: api.get(AGENTS, "ns", "other")["status"]["phase"])
    assert await eventually(lambda: api.get("v1/services", "ns", "other"))
    assert wakeups("watch") == before


async def test_the_key_secret_is_not_watched_and_the_safety_net_notices_its_deletion(
    api: Any, operator: None, eventually: Any
) -> None:
    """The default test settings tick the safety net every 0.3 s. The pods were given the
    deleted keys, so the converge it starts makes no new key: KeysMissing."""
    await converged(api, eventually)
    await api.delete("v1/secrets", "ns", "bot-keys")

    def ready_reason() -> str:
        conditions = api.get(AGENTS, "ns", "bot")["status"]["conditions"]
        return str(next(c["reason"] for c in conditions if c["type"] == "Ready"))

    assert await eventually(lambda: ready_reason() == "KeysMissing"), ready_reason()


def watch_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("agentry-watch")]


async def test_the_watches_end_with_the_operator(
    api: Any, operator_settings: OperatorSettings, webhook: WebhookSink, eventually: Any
) -> None:
    async with running_operator(operator_settings, webhook):
        await api.create(AGENTS, agent(replicas=1))
        assert await eventually(lambda: api.get(AGENTS, "ns", "bot")["status"]["phase"])
        assert len(watch_tasks()) == 9  # eight child kinds and the heartbeat Leases
    assert watch_tasks() == []


async def test_a_watch_event_longer_than_a_read_buffer_arrives_whole(
    api: Any, operator_settings: OperatorSettings
) -> None:
    """A state ConfigMap carries up to 1 MiB of ciphertext in one event line."""
    blob = "x" * 300_000
    meta = {"name": "bot-0-state", "namespace": "ns"}
    await api.create(CONFIGMAPS, {"kind": "ConfigMap", "metadata": meta, "data": {"b": blob}})
    kube = await Kube.connect(operator_settings.kubeconfig)
    try:
        events = kube.watch("/api/v1/namespaces/ns/configmaps", [], read_timeout=5)
        async with contextlib.aclosing(events):
            event = await anext(events)
        assert event["object"]["data"]["b"] == blob
    finally:
        await kube.close()

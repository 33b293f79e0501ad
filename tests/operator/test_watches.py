"""Drift learned from watches, against kmock: with the safety net an hour away, a deleted
or edited child comes back because its watch event woke the Agent's guard; the operator's
own writes wake nothing; the key Secret, which is never watched, is put back by the
safety net's read by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from agentry_operator import metrics
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
    await api.create(AGENTS, agent(replicas=1))
    assert await eventually(lambda: api.get(AGENTS, "ns", "bot")["status"]["phase"])


async def test_deleted_and_edited_children_come_back_from_their_watch_events(
    api: Any, watching_only: None, eventually: Any
) -> None:
    await converged(api, eventually)
    before, safety_net = wakeups("watch"), wakeups("safety-net")
    await api.delete("v1/services", "ns", "bot")
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"), within=5)
    await api.delete(CONFIGMAPS, "ns", "bot-config")
    assert await eventually(lambda: api.get(CONFIGMAPS, "ns", "bot-config"), within=5)
    rules = api.get(ROLES, "ns", "bot")["rules"]
    await api.patch(ROLES, "ns", "bot", {"rules": []})
    assert await eventually(lambda: api.get(ROLES, "ns", "bot")["rules"] == rules, within=5)
    # Changes that arrive while a converge runs are put back by it (woken once more or not).
    assert wakeups("watch") > before
    assert wakeups("safety-net") == safety_net


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


async def test_the_key_secret_is_not_watched_and_the_safety_net_puts_it_back(
    api: Any, operator: None, eventually: Any
) -> None:
    """The default test settings tick the safety net every 0.3 s."""
    await converged(api, eventually)
    await api.delete("v1/secrets", "ns", "bot-keys")
    assert await eventually(lambda: api.get("v1/secrets", "ns", "bot-keys"))

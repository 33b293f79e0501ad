"""A spec that gets past the CRD but not the models (issue 18, item 4).

Checks: it becomes Ready=False, reason InvalidSpec, with a message naming the field, and
no children; kopf counts the change as handled (no retry loop, no timer errors); a
corrected spec converges; an Agent with such a spec can still be deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

AGENTS = "agentry.dev/v1alpha1/agents"
LAST_HANDLED = "agentry.dev/last-handled-configuration"
MANAGED = "agentry.dev/kopf-managed"


def bad_agent() -> dict[str, Any]:
    # The CRD refuses this since issue 18; kmock has no schema, so it stands for whatever
    # a future model rule refuses that the CRD lets through.
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "bot", "namespace": "ns", "uid": "uid-bot", "generation": 1},
        "spec": {"rateLimit": {"requestsPerSecond": 10, "burst": 10, "perClientBurst": 0}},
    }


def ready(api: Any) -> dict[str, Any]:
    conditions = api.get(AGENTS, "ns", "bot")["status"]["conditions"]
    return dict(next(c for c in conditions if c["type"] == "Ready"))


async def test_a_refused_spec_is_a_ready_false_condition_naming_the_field(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(AGENTS, bad_agent())
    assert await eventually(lambda: ready(api)["reason"] == "InvalidSpec")
    cond = ready(api)
    assert cond["status"] == "False"
    assert cond["message"].startswith("spec.rateLimit.perClientBurst: ")
    assert cond["observedGeneration"] == 1
    assert api.get(AGENTS, "ns", "bot")["status"]["phase"] == "Failed"
    assert api.get("v1/configmaps", "ns", "bot-config") is None


async def test_a_refused_spec_is_handled_once_and_not_retried(
    api: Any, operator: None, eventually: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await api.create(AGENTS, bad_agent())
    # kopf stores the handled spec only when every handler finished without a retry.
    assert await eventually(
        lambda: LAST_HANDLED in api.get(AGENTS, "ns", "bot")["metadata"]["annotations"]
    )
    annotations = api.get(AGENTS, "ns", "bot")["metadata"]["annotations"]
    # A handler that raised would leave its progress (retries, delayed until) here.
    progress = [key for key in annotations if key not in (LAST_HANDLED, MANAGED)]
    assert not progress, annotations
    caplog.clear()
    await asyncio.sleep(1.0)  # several status (0.2 s) and drift (0.3 s) intervals
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert api.get("v1/services", "ns", "bot") is None


async def test_a_corrected_spec_converges(api: Any, operator: None, eventually: Any) -> None:
    await api.create(AGENTS, bad_agent())
    assert await eventually(lambda: ready(api)["reason"] == "InvalidSpec")
    fix = {"metadata": {"generation": 2}, "spec": {"rateLimit": {"perClientBurst": 5}}}
    await api.patch(AGENTS, "ns", "bot", fix)
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    assert await eventually(lambda: ready(api)["reason"] != "InvalidSpec")
    limits = json.loads(api.get("v1/configmaps", "ns", "bot-limits")["data"]["limits.json"])
    assert limits["perClientBurst"] == 5


async def test_an_agent_with_a_refused_spec_can_be_deleted(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(AGENTS, bad_agent())
    assert await eventually(lambda: ready(api)["reason"] == "InvalidSpec")
    await api.delete(AGENTS, "ns", "bot")
    assert await eventually(lambda: api.get(AGENTS, "ns", "bot") is None)

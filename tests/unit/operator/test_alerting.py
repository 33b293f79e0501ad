"""Alert windows over heartbeat counters (injected clock), incidents, webhook retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from agentry_operator.alerting import ErrorWindow, Incident, Notifier, payload


def test_the_error_rate_uses_counter_differences_within_the_window() -> None:
    window = ErrorWindow(window_seconds=60)
    window.observe(0, {"p0": (100, 50)})  # history before we looked does not count
    window.observe(10, {"p0": (200, 60)})
    assert window.totals() == (100, 10)
    assert window.rate(min_requests=10) == 0.1
    window.observe(100, {"p0": (210, 60)})  # the sample at t=10 left the window
    assert window.totals() == (10, 0)


def test_a_counter_drop_counts_as_a_restart_not_a_negative_rate() -> None:
    window = ErrorWindow(window_seconds=60)
    window.observe(0, {"p0": (500, 5)})
    window.observe(5, {"p0": (20, 10)})
    assert window.totals() == (20, 10)


def test_too_few_requests_never_alert() -> None:
    window = ErrorWindow(window_seconds=60)
    window.observe(0, {"p0": (0, 0)})
    window.observe(1, {"p0": (3, 3)})
    assert window.rate(min_requests=10) == 0.0


def test_an_incident_fires_once_and_resolves_once() -> None:
    incident = Incident()
    seen = [incident.evaluate(rate, 0.2) for rate in (0.1, 0.5, 0.6, 0.9, 0.1, 0.05, 0.3)]
    assert seen == [None, "opened", None, None, "resolved", None, "opened"]


def test_the_notification_says_which_agent_and_whether_it_resolved() -> None:
    body = payload("bot", "ns", "resolved", 0.01, 0.2)
    assert body["status"] == "resolved"
    assert "ns/bot" in body["text"]


async def test_a_failing_webhook_is_retried_with_backoff_and_never_raises() -> None:
    calls: list[str] = []
    sleeps: list[float] = []

    async def post(url: str, body: Mapping[str, Any]) -> int:
        calls.append(url)
        if len(calls) == 1:
            raise aiohttp.ClientConnectionError("refused")
        return 503 if len(calls) == 2 else 204

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    notifier = Notifier(retries=3, backoff_seconds=1.0, post=post, sleep=sleep)
    assert await notifier.deliver("http://hook", {"agent": "bot"}) is True
    assert len(calls) == 3
    assert sleeps == [1.0, 2.0]


async def test_a_webhook_that_never_answers_gives_up_quietly() -> None:
    async def post(url: str, body: Mapping[str, Any]) -> int:
        raise TimeoutError

    async def sleep(seconds: float) -> None:
        return None

    notifier = Notifier(retries=2, post=post, sleep=sleep)
    notifier.send("http://hook", {"agent": "bot"})
    await notifier.drain()
    assert await notifier.deliver("http://hook", {}) is False


async def test_the_webhook_url_is_never_logged(caplog: Any) -> None:
    async def post(url: str, body: Mapping[str, Any]) -> int:
        return 500

    async def sleep(seconds: float) -> None:
        return None

    notifier = Notifier(retries=1, post=post, sleep=sleep)
    await notifier.deliver("https://hooks.example/SECRET-TOKEN", {"agent": "bot"})
    assert "SECRET-TOKEN" not in caplog.text
    assert "HTTP 500" in caplog.text

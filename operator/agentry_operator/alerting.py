"""Error-rate alerting: a sliding window over heartbeat counter differences, and the webhook.

`ErrorWindow` turns cumulative per-pod counters into deltas (a drop means the pod
restarted, so its new value is the delta) and keeps them for `windowSeconds`.
`Incident` opens once when the rate crosses the threshold and resolves once when it falls
back, so one incident yields exactly one "firing" and one "resolved" notification.
`Notifier` posts them with retries and back-off; a failure is logged (never the URL) and
never raised into a handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

logger = logging.getLogger(__name__)

Transition = Literal["opened", "resolved"]


@dataclass
class ErrorWindow:
    """Requests and errors seen over the last `window_seconds`, from cumulative counters."""

    window_seconds: float
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)
    _samples: deque[tuple[float, float, float]] = field(default_factory=deque)

    def observe(self, now: float, counters: Mapping[str, tuple[float, float]]) -> None:
        """Record per-pod cumulative (requests, errors) read at monotonic time `now`."""
        requests = errors = 0.0
        for pod, (req, err) in counters.items():
            last_req, last_err = self._last.get(pod, (0.0, 0.0))
            if pod not in self._last:
                # First sight of this pod: only what happened from now on counts.
                last_req, last_err = req, err
            elif req < last_req or err < last_err:
                last_req, last_err = 0.0, 0.0  # restarted: counters began again at zero
            requests += req - last_req
            errors += err - last_err
            self._last[pod] = (req, err)
        for pod in set(self._last) - set(counters):
            del self._last[pod]
        self._samples.append((now, requests, errors))
        while self._samples and self._samples[0][0] < now - self.window_seconds:
            self._samples.popleft()

    def totals(self) -> tuple[float, float]:
        """(requests, errors) inside the window."""
        return (sum(s[1] for s in self._samples), sum(s[2] for s in self._samples))

    def rate(self, min_requests: int) -> float:
        """errors / requests in the window; 0 below `min_requests` requests."""
        requests, errors = self.totals()
        return errors / requests if requests >= max(min_requests, 1) else 0.0


@dataclass
class Incident:
    """Whether an alert is open; flips only on a crossing, so there are no storms."""

    open: bool = False

    def evaluate(self, rate: float, threshold: float) -> Transition | None:
        if not self.open and rate > threshold:
            self.open = True
            return "opened"
        if self.open and rate <= threshold:
            self.open = False
            return "resolved"
        return None


def payload(
    agent: str, namespace: str, transition: Transition, rate: float, threshold: float
) -> dict[str, Any]:
    """The JSON body of a notification (Slack- and Alertmanager-style receivers read `text`)."""
    state = "firing" if transition == "opened" else "resolved"
    text = (
        f"Agent {namespace}/{agent}: error rate {rate:.1%} "
        f"{'above' if state == 'firing' else 'back below'} {threshold:.1%}"
    )
    return {
        "status": state,
        "agent": agent,
        "namespace": namespace,
        "errorRate": round(rate, 4),
        "threshold": threshold,
        "text": text,
    }


Poster = Callable[[str, Mapping[str, Any]], Awaitable[int]]
Sleeper = Callable[[float], Awaitable[None]]


async def aiohttp_post(url: str, body: Mapping[str, Any]) -> int:
    """POST JSON with a short timeout; returns the HTTP status."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=dict(body)) as response,
    ):
        return response.status


@dataclass
class Notifier:
    """Delivers webhook notifications in the background, retried with exponential back-off."""

    retries: int = 5
    backoff_seconds: float = 1.0
    post: Poster = aiohttp_post
    sleep: Sleeper = asyncio.sleep
    _tasks: set[asyncio.Task[bool]] = field(default_factory=set)

    async def deliver(self, url: str, body: Mapping[str, Any]) -> bool:
        """Try up to 1 + retries times; True when a 2xx came back. Never raises."""
        for attempt in range(self.retries + 1):
            try:
                status = await self.post(url, body)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                reason = type(exc).__name__
            else:
                if 200 <= status < 300:
                    return True
                reason = f"HTTP {status}"
            logger.warning(
                "alert webhook for %s/%s failed (%s), attempt %d of %d",
                body.get("namespace"),
                body.get("agent"),
                reason,
                attempt + 1,
                self.retries + 1,
            )
            if attempt < self.retries:
                await self.sleep(self.backoff_seconds * 2**attempt)
        return False

    def send(self, url: str, body: Mapping[str, Any]) -> asyncio.Task[bool]:
        """Deliver without blocking the caller; the task is kept until it finishes."""
        task = asyncio.get_running_loop().create_task(self.deliver(url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for pending deliveries (operator shutdown, tests)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

"""Every Agent's guard, run by one task of the operator instead of a kopf daemon and a
kopf timer per Agent.

A guard converges its Agent again when a watched child drifted (`watching.Children`
wakes it from the child's event), soon after it starts (a child deleted before then
sent its event to no guard), and as a slow safety net (`drift_interval_seconds`,
spread). Between those, while the Agent's status is polled, it turns the watched
StatefulSet and heartbeats into status every `status_interval_seconds` (the first at a
random point within one interval). kopf's per-object daemon kept a task, a stopper, a
logger and the handler's arguments alive for every Agent (about 3 MB per 100 Agents),
and any kopf timer makes kopf keep each Agent's whole last body (about 34 KB of Python
objects, most of it managedFields). Here an Agent costs its `Guard` record with a slim
body; a round runs in a task of its own only while it works, one at a time per Agent.

handlers.py feeds in the Agents' events (`track`) and supplies the round itself.
Nothing here touches kopf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from typing import Any, Protocol

from agentry_operator.seen import AgentKey
from agentry_operator.watching import START_CHECK_SECONDS, Children, Guard, next_tick

logger = logging.getLogger(__name__)
RETRY_SECONDS = 10.0  # a round that failed runs again this soon
EARLY_SECONDS = 0.001  # a round due this soon starts now


class Round(Protocol):
    """One round of a guard; True when it failed and should run again soon."""

    def __call__(
        self, guard: Guard, *, woken: bool, retry: bool, read_secret: bool
    ) -> Awaitable[bool]: ...


class StatusRound(Protocol):
    """One status tick of a guard (its failures are logged, and the next tick comes)."""

    def __call__(self, guard: Guard) -> Awaitable[None]: ...


async def _no_status(guard: Guard) -> None:
    """The status round of a Guardian started without one (tests of the drift rounds)."""


class Guardian:
    """Starts each guard's round when it is woken or due, at most one at a time per Agent."""

    def __init__(
        self,
        children: Children,
        interval: float,
        *,
        status_interval: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = children
        self.interval = interval
        self.status_interval = status_interval
        self._clock = clock
        self._nudge = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._status: StatusRound = _no_status
        self._rounds: set[asyncio.Task[None]] = set()

    def track(
        self,
        key: AgentKey,
        body: Mapping[str, Any],
        memo: MutableMapping[str, Any],
        *,
        guarded: bool,
        polled: bool = False,
    ) -> None:
        """From each event of an Agent: start its guard (first round soon), keep the body
        it reads current, or stop it (deleted, being deleted, or not to be guarded).
        `polled`: its status ticks (a suspended Agent whose status says so has none)."""
        guard = self.children.guards.get(key)
        if not guarded:
            if guard is not None:
                self.children.release(key, guard)
            return
        if guard is not None:
            guard.body = body
        else:
            guard = self.children.guard(key, body)
            guard.memo = memo
            guard.notify = self._nudge.set
            guard.due = self._clock() + min(START_CHECK_SECONDS, self.interval)
        if not polled:
            guard.status_due = None
        elif guard.status_due is None:
            guard.status_due = self._clock() + next_tick(self.status_interval, first=True)
        self._nudge.set()

    def start(self, round_: Round, status: StatusRound = _no_status) -> None:
        """Run the guards from now on (once; later calls do nothing). The task, and every
        round, inherits the caller's context."""
        if self._loop is None:
            self._status = status
            self._loop = asyncio.create_task(self._run(round_), name="agentry-guardian")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """No new rounds; the running ones get `grace_seconds` to finish, then are cancelled.
        Every guard is released."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._rounds:
            await asyncio.wait(self._rounds, timeout=grace_seconds)
        for task in list(self._rounds):
            task.cancel()
        if self._rounds:
            await asyncio.wait(self._rounds)
        for key, guard in list(self.children.guards.items()):
            self.children.release(key, guard)

    async def _run(self, round_: Round) -> None:
        while True:
            self._nudge.clear()
            soonest = self._start_due(round_)
            delay = None if soonest is None else max(0.0, soonest - self._clock())
            await _woken(self._nudge, delay)

    def _start_due(self, round_: Round) -> float | None:
        """Start a round of every idle guard that is woken or due (a drift round first, a
        status tick otherwise); the next due time of the rest. Due within `EARLY_SECONDS`
        counts as due: a clock that steps (loop time under test) may never reach it."""
        now, soonest = self._clock() + EARLY_SECONDS, None
        for key, guard in list(self.children.guards.items()):
            if guard.busy:
                continue
            if guard.wake.is_set() or guard.due <= now:
                self._spawn(guard, self._round(round_, key, guard))
            elif guard.status_due is not None and guard.status_due <= now:
                self._spawn(guard, self._tick(key, guard))
            else:
                due = guard.due if guard.status_due is None else min(guard.due, guard.status_due)
                soonest = due if soonest is None else min(soonest, due)
        return soonest

    def _spawn(self, guard: Guard, work: Coroutine[Any, Any, None]) -> None:
        guard.busy = True
        task = asyncio.create_task(work)
        self._rounds.add(task)
        task.add_done_callback(self._rounds.discard)

    async def _tick(self, key: AgentKey, guard: Guard) -> None:
        try:
            await self._status(guard)
        except Exception:
            logger.exception("Agent %s/%s: the status round failed", *key)
        finally:
            guard.busy = False
        if guard.status_due is not None:
            guard.status_due = self._clock() + self.status_interval
        self._nudge.set()

    async def _round(self, round_: Round, key: AgentKey, guard: Guard) -> None:
        woken = guard.wake.is_set()
        guard.wake.clear()
        try:
            retry = await round_(
                guard, woken=woken, retry=guard.retry, read_secret=guard.rounds > 0
            )
        except Exception:
            logger.exception("Agent %s/%s: the guard's round failed", *key)
            retry = True
        finally:
            guard.busy = False
        guard.rounds += 1
        guard.retry = retry
        wait = RETRY_SECONDS if retry else next_tick(self.interval, first=guard.rounds == 1)
        guard.due = self._clock() + wait
        self._nudge.set()


async def _woken(wake: asyncio.Event, delay: float | None) -> bool:
    """Sleep up to `delay` (None: until woken); True when woken."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await wake.wait()
    return wake.is_set()

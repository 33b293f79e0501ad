"""One task guards every Agent (guarding.py), on fake loop time: a new guard counts the
children soon and then ticks at the safety net's cadence; a drifted child's event runs
its round at once; a failed round runs again in 10 s; an Agent has one round at a time;
a guard stops with its Agent; stopping the operator lets a running round finish."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from agentry_operator import builders
from agentry_operator.guarding import RETRY_SECONDS, Guardian
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings
from agentry_operator.watching import SPREAD, START_CHECK_SECONDS, Children, Guard

pytestmark = pytest.mark.looptime

SETTINGS = OperatorSettings(runtime_image="img:1")
INTERVAL = 1800.0
KEY = ("ns", "bot")
BODY = {
    "metadata": {"name": "bot", "namespace": "ns", "uid": "u1", "generation": 1},
    "spec": {},
    "status": {"observedGeneration": 1, "phase": "Running"},
}


@dataclass
class Rounds:
    """The round the guardian runs: records when and how, fails or blocks on request."""

    started: list[tuple[float, bool, bool, bool]] = field(default_factory=list)
    fail: bool = False
    hold: asyncio.Event | None = None
    finished: int = 0

    async def __call__(self, guard: Guard, *, woken: bool, retry: bool, read_secret: bool) -> bool:
        self.started.append((asyncio.get_running_loop().time(), woken, retry, read_secret))
        if self.hold is not None:
            await self.hold.wait()
        self.finished += 1
        return self.fail

    def times(self) -> list[float]:
        return [round(started[0], 3) for started in self.started]


@pytest.fixture
async def guardian() -> AsyncIterator[tuple[Guardian, Rounds]]:
    loop = asyncio.get_running_loop()
    rounds = Rounds()
    guardian = Guardian(Children(SETTINGS), INTERVAL, clock=loop.time)
    guardian.start(rounds)
    yield guardian, rounds
    await guardian.stop()


async def test_a_new_guard_counts_soon_then_ticks_at_the_safety_net_cadence(
    guardian: tuple[Guardian, Rounds],
) -> None:
    g, rounds = guardian
    started = asyncio.get_running_loop().time()
    g.track(KEY, BODY, {}, guarded=True)
    await asyncio.sleep(3 * INTERVAL)
    times = [t - started for t in rounds.times()]
    assert times[0] == pytest.approx(START_CHECK_SECONDS, abs=0.01)
    assert START_CHECK_SECONDS <= times[1] <= START_CHECK_SECONDS + INTERVAL  # spread start
    for before, after in itertools.pairwise(times[1:]):
        assert INTERVAL * (1 - SPREAD) <= after - before <= INTERVAL * (1 + SPREAD)
    # The first round only counts the children seen; later ones read the key Secret.
    assert [read for *_, read in rounds.started[:2]] == [False, True]
    assert not any(woken for _, woken, _, _ in rounds.started)


async def test_a_drifted_childs_event_runs_the_round_at_once(
    guardian: tuple[Guardian, Rounds],
) -> None:
    g, rounds = guardian
    g.track(KEY, BODY, {}, guarded=True)
    await asyncio.sleep(START_CHECK_SECONDS + 1)
    agent = Agent.from_body(BODY)
    woke = asyncio.get_running_loop().time()
    service = builders.build_service(agent)
    assert g.children.event("Service", "DELETED", service)
    await asyncio.sleep(0.1)
    assert rounds.started[-1][:2] == (pytest.approx(woke, abs=0.01), True)


async def test_a_failed_round_runs_again_in_ten_seconds(
    guardian: tuple[Guardian, Rounds],
) -> None:
    g, rounds = guardian
    rounds.fail = True
    g.track(KEY, BODY, {}, guarded=True)
    await asyncio.sleep(START_CHECK_SECONDS + 2 * RETRY_SECONDS + 1)
    first, second, third = rounds.times()[:3]
    assert second - first == pytest.approx(RETRY_SECONDS, abs=0.01)
    assert third - second == pytest.approx(RETRY_SECONDS, abs=0.01)
    assert all(retry for _, _, retry, _ in rounds.started[1:])


async def test_a_wake_during_a_round_runs_one_more_round_after_it(
    guardian: tuple[Guardian, Rounds],
) -> None:
    g, rounds = guardian
    rounds.hold = asyncio.Event()
    g.track(KEY, BODY, {}, guarded=True)
    await asyncio.sleep(START_CHECK_SECONDS + 1)
    assert len(rounds.started) == 1
    g.children.guards[KEY].wake_now()
    g.children.guards[KEY].wake_now()
    await asyncio.sleep(1)
    assert len(rounds.started) == 1  # never two rounds of one Agent at once
    rounds.hold.set()
    await asyncio.sleep(1)
    assert len(rounds.started) == 2
    assert rounds.started[1][1]  # woken


async def test_a_guard_stops_with_its_agent_and_the_body_stays_current(
    guardian: tuple[Guardian, Rounds],
) -> None:
    g, rounds = guardian
    g.track(KEY, BODY, {}, guarded=True)
    newer: dict[str, Any] = {**BODY, "spec": {"suspend": True}}
    g.track(KEY, newer, {}, guarded=True)
    assert g.children.guards[KEY].body is newer
    g.track(KEY, newer, {}, guarded=False)  # deleted, or a spec the models refuse
    assert KEY not in g.children.guards
    await asyncio.sleep(2 * INTERVAL)
    assert rounds.started == []


async def mid_round() -> tuple[Guardian, Rounds]:
    """A guardian whose only guard is in the middle of a round that waits for `hold`."""
    rounds = Rounds(hold=asyncio.Event())
    g = Guardian(Children(SETTINGS), INTERVAL, clock=asyncio.get_running_loop().time)
    g.start(rounds)
    g.track(KEY, BODY, {}, guarded=True)
    await asyncio.sleep(START_CHECK_SECONDS + 1)
    return g, rounds


async def test_stopping_lets_a_running_round_finish_within_the_grace() -> None:
    g, rounds = await mid_round()
    asyncio.get_running_loop().call_later(1, rounds.hold.set)  # type: ignore[union-attr]
    await g.stop(grace_seconds=5)
    assert rounds.finished == 1
    assert not g.children.guards


async def test_a_round_past_the_grace_is_cancelled() -> None:
    g, rounds = await mid_round()
    stopping = asyncio.get_running_loop().time()
    await g.stop(grace_seconds=5)
    assert rounds.finished == 0
    assert asyncio.get_running_loop().time() - stopping == pytest.approx(5, abs=0.1)


async def test_a_polled_agents_status_ticks_between_the_drift_rounds() -> None:
    """Every 15 s (the first within one interval), never beside a drift round of the same
    Agent; not while the Agent is not polled (suspended and settled)."""
    loop = asyncio.get_running_loop()
    rounds, ticks = Rounds(), []

    async def status(guard: Guard) -> None:
        ticks.append(loop.time())
        if len(ticks) == 2:
            raise RuntimeError("a failed tick is logged; the next one comes")

    g = Guardian(Children(SETTINGS), INTERVAL, status_interval=15.0, clock=loop.time)
    g.start(rounds, status)
    try:
        started = loop.time()
        g.track(KEY, BODY, {}, guarded=True, polled=True)
        await asyncio.sleep(100)
        assert 0 <= ticks[0] - started <= 15
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(ticks)]
        assert gaps == [15.0] * (len(ticks) - 1)
        assert rounds.times()[0] - started == pytest.approx(START_CHECK_SECONDS, abs=0.01)
        g.track(KEY, BODY, {}, guarded=True, polled=False)
        count = len(ticks)
        await asyncio.sleep(100)
        assert len(ticks) == count
    finally:
        await g.stop()

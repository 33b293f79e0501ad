"""Per-session locks: turns of one session run one at a time, and no lock outlives its use."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.sessions import SessionLocks
from agent_runtime.state import SessionKey

ONE = SessionKey("client", "one")
OTHER = SessionKey("client", "other")


async def test_turns_of_one_session_run_one_after_the_other_and_of_two_sessions_together() -> None:
    locks = SessionLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def turn(key: SessionKey, name: str) -> None:
        async with locks(key):
            order.append(f"{name} in")
            await release.wait()
            order.append(f"{name} out")

    tasks = [
        asyncio.create_task(turn(ONE, "a")),
        asyncio.create_task(turn(ONE, "b")),
        asyncio.create_task(turn(OTHER, "c")),
    ]
    await asyncio.sleep(0)
    assert order == ["a in", "c in"]  # b waits for a; c's session is another
    release.set()
    await asyncio.gather(*tasks)
    assert order.index("a out") < order.index("b in")
    assert len(locks) == 0  # nobody holds or awaits a lock: none is kept


async def test_a_turn_cancelled_while_waiting_leaves_the_lock_to_the_others() -> None:
    locks = SessionLocks()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks(ONE):
            entered.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await entered.wait()
    waiting = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await first
    assert len(locks) == 0
    async with locks(ONE):  # free again, for a new turn
        assert len(locks) == 1


async def test_an_error_inside_a_turn_releases_the_session() -> None:
    locks = SessionLocks()
    with pytest.raises(RuntimeError):
        async with locks(ONE):
            raise RuntimeError("the model failed")
    assert len(locks) == 0
    await asyncio.wait_for(locks(ONE).__aenter__(), timeout=1)

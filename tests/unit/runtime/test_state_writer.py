"""The journal's writer thread: results and errors come back to the awaiting append, in
order, off the event loop's thread, and a caller that gives up does not stop the write."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agent_runtime.state.writer import WriterThread


async def test_calls_run_in_order_on_one_other_thread_and_return_their_results() -> None:
    writer = WriterThread("test-writer")
    seen: list[tuple[int, str]] = []

    def call(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    results = await asyncio.gather(*(writer.run(lambda n=n: call(n)) for n in range(50)))
    writer.close()
    assert results == [n * 10 for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-writer"}


async def test_an_error_reaches_the_caller_and_the_thread_keeps_serving() -> None:
    writer = WriterThread("test-writer")

    def fail() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await writer.run(fail)
    assert await writer.run(lambda: "next") == "next"
    writer.close()


async def test_a_cancelled_waiter_does_not_cancel_its_write() -> None:
    writer = WriterThread("test-writer")
    started, release = threading.Event(), threading.Event()
    written: list[str] = []

    def slow_write() -> None:
        started.set()
        release.wait(5)
        written.append("record")

    waiter = asyncio.create_task(writer.run(slow_write))
    await asyncio.to_thread(started.wait, 5)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await writer.run(lambda: list(written)) == ["record"]
    writer.close()


async def test_close_stops_the_thread_and_a_later_call_starts_it_again() -> None:
    writer = WriterThread("test-writer-restart")

    def alive() -> int:
        return sum(t.name == "test-writer-restart" for t in threading.enumerate())

    assert await writer.run(alive) == 1
    writer.close()
    assert alive() == 0
    assert await writer.run(alive) == 1
    writer.close()
    assert alive() == 0

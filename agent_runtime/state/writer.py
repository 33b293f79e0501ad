"""One thread that does a store's journal writes, handed over without an executor.

A journal batch is written and fsynced off the event loop, one batch at a time (group
commit, ``batching.py``). ``run_in_executor`` costs, per batch, a ``concurrent.futures``
future, a work item, the pool's bookkeeping and a second future chained to the first;
this thread takes a job from a queue and reports back with one
``call_soon_threadsafe``, which is all a single, always-ready writer needs. The caller
still awaits the outcome, so an append is acknowledged only after its fsync returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the waiter gave up (cancelled); the write happened all the same
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WriterThread:
    """Runs blocking calls in order on one daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, call: Callable[[], T]) -> T:
        """The result of ``call()`` run on the thread (its exception raised here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put((call, loop, future))
        return await future

    def close(self) -> None:
        """Stop the thread after the jobs already queued; it can be started again."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, loop, future = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = call()
            except BaseException as exc:
                error = exc
            # RuntimeError: the loop closed while the job ran, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, result, error)
            del job, call, future, result, error  # no reference kept until the next job

"""The garbage collector settled for serving, once start-up is over.

A runtime's process holds about 150,000 objects that the cycle collector tracks once
its imports are done (functions, classes, pydantic's field descriptions, and the MCP
SDK when the Agent has tools), and none of them ever becomes garbage. Left as they are,
every full collection walks them all, and every young one promotes the objects that 32
requests in flight hold at that moment. Measured under wrk at production settings
(issue 13), the collector took about a tenth of the runtime's time and its full
collections paused the event loop for tens of milliseconds, the tail of the latency.

So, when the port opens: one collection, then ``gc.freeze()`` moves what survives into
the permanent generation, which no collection walks again; and the young generation's
threshold goes from 700 to ``YOUNG_THRESHOLD`` allocations, so that a young collection
comes every few hundred requests, by when the objects of the requests it saw are gone.
Garbage in a reference cycle is still collected; only its collection waits a little
longer. Objects created later (sessions, messages) are collected as before.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Tracked allocations (net of deallocations) between young collections (CPython: 700)."""


def settle_for_serving() -> None:
    """Collect once, freeze what start-up left, and raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

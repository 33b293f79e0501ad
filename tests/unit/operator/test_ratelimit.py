"""The operator client's token bucket (ratelimit.py), on a fake clock."""

from __future__ import annotations

import pytest
from agentry_operator.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_burst_passes_at_once_and_then_requests_leave_at_the_qps() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 3, clock=clock, sleep=clock.sleep)
    waits = [await bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3:] == pytest.approx([0.1, 0.1])
    assert clock.now == pytest.approx(0.2)  # 5 requests: 3 at once, 2 at 10/s


async def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 2, clock=clock, sleep=clock.sleep)
    for _ in range(2):
        await bucket.acquire()
    clock.now += 60  # a long quiet spell earns 2 tokens, not 600
    assert [await bucket.acquire() for _ in range(3)] == pytest.approx([0, 0, 0.1])


async def test_zero_qps_is_unbounded_and_a_burst_below_one_is_refused() -> None:
    clock = Clock()
    bucket = TokenBucket(0, 1, clock=clock, sleep=clock.sleep)
    assert [await bucket.acquire() for _ in range(100)] == [0.0] * 100
    assert clock.slept == []
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(5, 0)

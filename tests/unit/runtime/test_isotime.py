"""Cached-prefix timestamps give exactly ``datetime``'s text (message `at`, log `time`)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from agent_runtime import isotime
from agent_runtime.clock import SystemClock
from agent_runtime.isotime import iso_micros, iso_millis, now_micros
from agent_runtime.quotas import Quotas, SessionLimits

EDGES = [
    0.0,
    -1.5,
    1_000_000_000.0,
    1_000_000_000.9999996,  # rounds up into the next second
    1_000_000_000.0000005,  # half a microsecond: rounded half to even, as datetime does
    1_000_000_000.0000015,
    1_799_999_999.9994999,
    1_700_000_000.5,
]


@pytest.mark.parametrize("seconds", EDGES)
def test_edges_are_datetime_text(seconds: float) -> None:
    when = datetime.fromtimestamp(seconds, UTC)
    assert iso_micros(seconds) == when.isoformat()
    assert iso_millis(seconds) == when.isoformat(timespec="milliseconds")


def test_random_times_in_any_order_are_datetime_text() -> None:
    rng = random.Random(13)
    now = time.time()
    for _ in range(20_000):  # jumping between seconds, so the cache is replaced each time
        seconds = now + rng.uniform(-1e6, 1e6)
        when = datetime.fromtimestamp(seconds, UTC)
        assert iso_micros(seconds) == when.isoformat()
        assert iso_millis(seconds) == when.isoformat(timespec="milliseconds")


def test_threads_never_pair_a_second_with_another_seconds_text() -> None:
    seconds = [1_700_000_000.25 + i * 1.5 for i in range(400)]
    expected = {s: datetime.fromtimestamp(s, UTC).isoformat() for s in seconds}
    wrong: list[str] = []

    def stamp(offset: int) -> None:
        for i in range(4000):
            s = seconds[(i * 7 + offset) % len(seconds)]
            if iso_micros(s) != expected[s]:
                wrong.append(iso_micros(s))

    threads = [threading.Thread(target=stamp, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_message_stamped_on_the_real_clock_is_now_and_parses() -> None:
    quotas = Quotas(SessionLimits(), SystemClock())
    before = datetime.now(UTC)
    stamped = datetime.fromisoformat(quotas.timestamp())
    after = datetime.fromisoformat(now_micros())
    assert before <= stamped <= after
    assert stamped.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "nanos",
    [1_700_000_000_123_456_789, 1_700_000_000_000_000_999, 1_700_000_000_999_999_999, 0],
)
def test_the_current_time_is_written_as_datetime_writes_the_same_instant(
    monkeypatch: pytest.MonkeyPatch, nanos: int
) -> None:
    """now_micros and now_millis read the clock in nanoseconds; datetime truncates them to
    microseconds, and the text must be the same as datetime's for that instant."""
    monkeypatch.setattr(isotime, "time", SimpleNamespace(time_ns=lambda: nanos))
    whole, rest = divmod(nanos, 1_000_000_000)
    when = datetime.fromtimestamp(whole, UTC).replace(microsecond=rest // 1000)
    assert isotime.now_micros() == when.isoformat()
    assert isotime.now_millis() == when.isoformat(timespec="milliseconds")

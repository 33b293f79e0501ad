"""UTC timestamps as ISO 8601 text, without building a ``datetime`` for each one.

Every turn stamps its two messages and every request writes an access line, and
``datetime.now(UTC).isoformat()`` costs a ``datetime`` object and a full format each
time, a few per cent of a request's CPU under load (issue 13's profile). The date and
time down to the second change once a second, so that prefix is formatted once and
cached; only the fraction is formatted per call. The text is exactly ``datetime``'s
(``fromtimestamp(t, UTC).isoformat(...)``, including its rounding to the microsecond and
its omission of a zero fraction), so readers that parse it see no difference.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

_last: tuple[int, str] = (-1, "")
"""The second last formatted and its ``YYYY-MM-DDTHH:MM:SS`` text, swapped as one tuple
so that threads formatting log lines at the same time never pair a second with another
second's text."""


def _split(seconds: float) -> tuple[int, int]:
    """Whole seconds and microseconds, rounded half to even as ``datetime`` rounds them."""
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        return int(whole) + 1, micros - 1_000_000
    if micros < 0:  # before 1970: modf gives a negative fraction
        return int(whole) - 1, micros + 1_000_000
    return int(whole), micros


def _prefix(whole: int) -> str:
    global _last
    second, text = _last
    if second != whole:
        text = datetime.fromtimestamp(whole, UTC).isoformat()[:19]
        _last = (whole, text)
    return text


def iso_micros(seconds: float) -> str:
    """``datetime.fromtimestamp(seconds, UTC).isoformat()``."""
    return _micros_text(*_split(seconds))


def iso_millis(seconds: float) -> str:
    """``datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")``."""
    whole, micros = _split(seconds)
    return _millis_text(whole, micros // 1000)


def now_micros() -> str:
    """The current UTC time as ``datetime.now(UTC).isoformat()`` writes it: both truncate
    the clock's nanoseconds to microseconds, here in integers (no float to split)."""
    whole, nanos = divmod(time.time_ns(), 1_000_000_000)
    return _micros_text(whole, nanos // 1000)


def now_millis() -> str:
    """The current UTC time as ``iso_millis(time.time())`` writes it, in integers."""
    whole, nanos = divmod(time.time_ns(), 1_000_000_000)
    return _millis_text(whole, nanos // 1_000_000)


def _micros_text(whole: int, micros: int) -> str:
    """As ``isoformat()`` writes it: no fraction when it is zero."""
    if micros:
        return f"{_prefix(whole)}.{micros:06d}+00:00"
    return f"{_prefix(whole)}+00:00"


def _millis_text(whole: int, millis: int) -> str:
    return f"{_prefix(whole)}.{millis:03d}+00:00"

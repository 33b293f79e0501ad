"""Time: parsing Kubernetes timestamps and durations, printing ages, and the clock.

Commands that wait (start, stop, restart, rotate-key) and refresh (metrics --watch)
take a `Clock`, so unit tests drive time by hand instead of sleeping.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .errors import UsageError

_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class Clock(Protocol):
    """Wall-clock time and sleeping, injectable for tests."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass
class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def parse_timestamp(text: str) -> datetime:
    """Parse RFC 3339 (with up to nanosecond fractions, as Kubernetes writes them)."""
    return datetime.fromtimestamp(timestamp_nanos(text) / 1e9, UTC)


def timestamp_nanos(text: str) -> int:
    """Nanoseconds since the epoch, keeping the full precision of log timestamps."""
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    whole, fraction, zone = match.groups()
    base = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    nanos = int((fraction or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + nanos


def parse_duration(text: str) -> float:
    """Seconds in `90`, `30s`, `5m`, `1h30m`, `2d`; a clear error otherwise."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    position, total = 0, 0.0
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * units[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise UsageError(f"invalid duration {text!r}: use forms like 30s, 5m, 1h30m")
    return total


def format_age(seconds: float) -> str:
    """An age the way kubectl prints it: 42s, 3m20s, 5h4m, 3d2h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s" if secs and minutes < 10 else f"{minutes}m"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{mins}m" if mins and hours < 10 else f"{hours}h"
    days, hrs = divmod(hours, 24)
    return f"{days}d{hrs}h" if hrs and days < 10 else f"{days}d"


def age_of(timestamp: str | None, now: datetime) -> float | None:
    """Seconds since an RFC 3339 timestamp, or None when absent or unreadable."""
    if not timestamp:
        return None
    try:
        return (now - parse_timestamp(timestamp)).total_seconds()
    except ValueError:
        return None


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp with second precision, as Kubernetes writes them."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

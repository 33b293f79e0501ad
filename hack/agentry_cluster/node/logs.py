"""Container log files and the kubelet's log query.

Each run of a container writes one file in the CRI format the kubelet uses
(`<RFC3339Nano time> <stdout|stderr> <F|P> <text>`), so `timestamps` and `sinceSeconds`
can be answered later. The pod worker keeps the current and the previous run's file.
Parsing the query and selecting lines are pure; the kubelet server streams the result.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PARTIAL_LIMIT = 16 * 1024


class LogQueryError(ValueError):
    """A malformed query parameter (HTTP 400)."""


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None
    limit_bytes: int | None = None

    def cutoff(self, now: datetime) -> datetime | None:
        if self.since_seconds is not None:
            return now - timedelta(seconds=self.since_seconds)
        return self.since_time


def _flag(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name)
    return value is not None and value.lower() in ("", "1", "true", "yes")


def _positive(params: Mapping[str, str], name: str, minimum: int) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise LogQueryError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise LogQueryError(f"{name} must be at least {minimum}, got {number}")
    return number


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Python keeps microseconds)."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text)


def parse_query(params: Mapping[str, str]) -> LogQuery:
    """The kubelet's `/containerLogs` parameters, as `kubectl logs` sends them."""
    since_time = None
    if params.get("sinceTime"):
        try:
            since_time = parse_timestamp(params["sinceTime"])
        except ValueError:
            raise LogQueryError(f"sinceTime is not RFC 3339: {params['sinceTime']!r}") from None
    return LogQuery(
        follow=_flag(params, "follow"),
        previous=_flag(params, "previous"),
        timestamps=_flag(params, "timestamps"),
        tail_lines=_positive(params, "tailLines", 0),
        since_seconds=_positive(params, "sinceSeconds", 1),
        since_time=since_time,
        limit_bytes=_positive(params, "limitBytes", 1),
    )


def format_record(when: datetime, stream: str, text: str, partial: bool) -> str:
    """One line of a log file; `text` without its newline."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return f"{stamp} {stream} {'P' if partial else 'F'} {text}\n"


@dataclass(frozen=True)
class LogLine:
    """A whole line as the user sees it: partial records joined."""

    time: datetime
    stamp: str
    text: str


def parse_records(lines: Iterable[str]) -> list[LogLine]:
    """Join partial records into whole lines; skip malformed ones."""
    out: list[LogLine] = []
    pending: dict[str, tuple[str, str]] = {}
    for raw in lines:
        raw = raw.rstrip("\n")
        parts = raw.split(" ", 3)
        if len(parts) < 3:
            continue
        stamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else ""
        first_stamp, so_far = pending.pop(stream, (stamp, ""))
        if tag == "P":
            pending[stream] = (first_stamp, so_far + text)
            continue
        try:
            when = parse_timestamp(first_stamp)
        except ValueError:
            continue
        out.append(LogLine(when, first_stamp, so_far + text + "\n"))
    return out


def render(lines: Iterable[LogLine], query: LogQuery, now: datetime) -> str:
    """Apply sinceSeconds/sinceTime, tailLines and timestamps (limitBytes is the caller's)."""
    selected = list(lines)
    cutoff = query.cutoff(now)
    if cutoff is not None:
        selected = [line for line in selected if line.time >= cutoff]
    if query.tail_lines is not None:
        selected = selected[-query.tail_lines :] if query.tail_lines else []
    if query.timestamps:
        return "".join(f"{line.stamp} {line.text}" for line in selected)
    return "".join(line.text for line in selected)

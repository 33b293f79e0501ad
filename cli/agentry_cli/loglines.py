"""Log lines of several replicas: timestamps, merging in time order, pretty printing.

Pod logs are requested with `timestamps=true`, so every line starts with the
kubelet's RFC 3339 (nanosecond) time; merging the replicas' streams on that time gives
one story of the whole Agent. The runtime logs one JSON object per line; those are
shown as `LEVEL message key=value ...` unless the user asks for --raw.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .timing import timestamp_nanos

LEVEL_KEYS = ("level", "levelname", "severity")
MESSAGE_KEYS = ("message", "msg", "event")
# Dropped in pretty output: the time is shown from the kubelet, the replica in the prefix.
REDUNDANT_KEYS = ("time", "timestamp", "ts", "@timestamp", "asctime", "agent", "replica")


@dataclass(frozen=True)
class LogLine:
    """One line of one pod's log."""

    pod: str
    nanos: int  # kubelet timestamp, nanoseconds since the epoch (0 when absent)
    text: str  # the line as the container wrote it

    @property
    def time(self) -> str:
        """The timestamp as RFC 3339 UTC with milliseconds."""
        moment = datetime.fromtimestamp(self.nanos // 1_000_000_000, UTC)
        millis = (self.nanos // 1_000_000) % 1000
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def parse_line(pod: str, raw: str, previous_nanos: int = 0) -> LogLine:
    """Split `<timestamp> <text>`; a line without a timestamp keeps the previous time."""
    stamp, _, text = raw.partition(" ")
    try:
        return LogLine(pod, timestamp_nanos(stamp), text)
    except ValueError:
        return LogLine(pod, previous_nanos, raw)


def parse_log(pod: str, text: str) -> list[LogLine]:
    """All lines of one pod's log response, in the order written."""
    lines: list[LogLine] = []
    nanos = 0
    for raw in text.splitlines():
        line = parse_line(pod, raw, nanos)
        nanos = line.nanos
        lines.append(line)
    return lines


def merge(streams: Iterable[list[LogLine]]) -> Iterator[LogLine]:
    """Merge per-pod streams (each already in time order) into one time order.

    Lines with the same time keep the order of the streams given (stable).
    """
    return heapq.merge(*streams, key=lambda line: line.nanos)


def pretty_text(text: str) -> str:
    """A JSON log object as `LEVEL [logger] message key=value ...`; other text unchanged."""
    record = json_record(text)
    if record is None:
        return text
    level = _pop_first(record, LEVEL_KEYS)
    message = _pop_first(record, MESSAGE_KEYS)
    logger = record.pop("logger", None)
    for key in REDUNDANT_KEYS:
        record.pop(key, None)
    if isinstance(logger, str) and logger:
        message = f"[{logger.rsplit('.', 1)[-1]}] {message or ''}".rstrip()
    label = {"WARNING": "WARN", "CRITICAL": "CRIT"}.get(str(level).upper(), str(level).upper())
    parts = [label.ljust(5) if level is not None else "", str(message or "")]
    parts.extend(f"{key}={_value_text(value)}" for key, value in record.items())
    return " ".join(part for part in parts if part)


def json_record(text: str) -> dict[str, Any] | None:
    """The line as a JSON object, or None when it is not one."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def format_line(line: LogLine, pod_width: int, raw: bool) -> str:
    """How one merged line prints: raw lines as written, others with pod and time."""
    if raw:
        return line.text
    return f"{line.pod.ljust(pod_width)}  {line.time}  {pretty_text(line.text)}"


def as_document(line: LogLine) -> dict[str, Any]:
    """One line for -o json|yaml: the pod, the time, and the parsed record or the text."""
    record = json_record(line.text)
    document: dict[str, Any] = {"pod": line.pod, "time": line.time}
    if record is not None:
        document["record"] = record
    else:
        document["line"] = line.text
    return document


def _pop_first(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in record:
            return record.pop(key)
    return None


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value) if (" " in value or not value) else value
    return json.dumps(value, separators=(",", ":"))

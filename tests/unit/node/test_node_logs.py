"""Container log files and the kubelet's log query: the parameters `kubectl logs` sends,
partial lines, tail, since, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from agentry_cluster.node.logs import (
    LogQueryError,
    format_record,
    parse_query,
    parse_records,
    render,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def records(*entries: tuple[int, str, str, bool]) -> list[str]:
    return [format_record(T0 + timedelta(seconds=s), stream, text, partial)
            for s, stream, text, partial in entries]  # fmt: skip


def test_kubectl_logs_parameters_are_understood() -> None:
    params = {"follow": "true", "previous": "true", "tailLines": "5", "sinceSeconds": "60",
              "timestamps": "true", "limitBytes": "100"}  # fmt: skip
    query = parse_query(params)
    assert (query.follow, query.previous, query.timestamps) == (True, True, True)
    assert (query.tail_lines, query.since_seconds, query.limit_bytes) == (5, 60, 100)
    assert parse_query({}).follow is False


BAD = [{"tailLines": "x"}, {"sinceSeconds": "0"}, {"sinceTime": "no"}]


@pytest.mark.parametrize("params", BAD)
def test_a_bad_parameter_is_a_clear_error(params: dict[str, str]) -> None:
    with pytest.raises(LogQueryError):
        parse_query(params)


def test_a_record_carries_a_nanosecond_timestamp_and_its_stream() -> None:
    line = format_record(T0, "stderr", "oops", False)
    assert line == "2026-01-01T12:00:00.123456000Z stderr F oops\n"


def test_partial_records_join_into_one_line() -> None:
    lines = parse_records(records((0, "stdout", "hel", True), (0, "stdout", "lo", False)))
    assert [x.text for x in lines] == ["hello\n"]


def test_tail_since_and_timestamps_select_and_decorate_lines() -> None:
    lines = parse_records(records(*((s, "stdout", f"line {s}", False) for s in range(5))))
    now = T0 + timedelta(seconds=10)
    assert render(lines, parse_query({"tailLines": "2"}), now) == "line 3\nline 4\n"
    assert render(lines, parse_query({"tailLines": "0"}), now) == ""
    assert render(lines, parse_query({"sinceSeconds": "7"}), now) == "line 3\nline 4\n"
    stamped = render(lines, parse_query({"tailLines": "1", "timestamps": "1"}), now)
    assert stamped == "2026-01-01T12:00:04.123456000Z line 4\n"

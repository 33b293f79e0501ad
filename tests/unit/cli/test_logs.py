"""`kubectl agent logs`: every replica in one time-ordered stream, pretty or raw."""

from __future__ import annotations

import json

from agentry_cli.errors import OperationFailed
from agentry_cli.loglines import LogLine, merge, parse_log, pretty_text


def test_logs_of_all_replicas_are_merged_in_time_order(kubectl_agent):
    out = kubectl_agent("logs", "demo").out

    prefixes = [line.split()[0] for line in out.splitlines()]
    assert prefixes == ["demo-0", "demo-1", "demo-0", "demo-1", "demo-0"]
    times = [line.split()[1] for line in out.splitlines()]
    assert times == sorted(times)


def test_json_log_lines_are_pretty_printed_with_level_message_and_fields(kubectl_agent):
    lines = kubectl_agent("logs", "demo").out.splitlines()

    assert lines[0] == "demo-0  2026-11-26T10:00:00.100Z  INFO  serving port=8080"
    assert lines[3].endswith('ERROR model call failed error="connection refused"')
    assert lines[4].endswith("plain text from a library")


def test_raw_logs_keep_each_line_exactly_as_written(kubectl_agent):
    lines = kubectl_agent("logs", "demo", "--raw").out.splitlines()

    assert json.loads(lines[0])["message"] == "serving"
    assert lines[4] == "plain text from a library"


def test_logs_as_json_give_one_object_per_line_with_pod_and_record(kubectl_agent):
    documents = [
        json.loads(x) for x in kubectl_agent("logs", "demo", "-o", "json").out.splitlines()
    ]

    assert documents[1]["pod"] == "demo-1"
    assert documents[1]["record"]["generation"] == 6
    assert documents[4]["line"] == "plain text from a library"


def test_logs_pass_since_previous_and_tail_to_every_replica(kubectl_agent, fake_cluster):
    kubectl_agent("logs", "demo", "--since", "10m", "--previous", "--tail", "50")

    assert [pod for pod, _ in fake_cluster.log_requests] == ["demo-0", "demo-1"]
    for _, options in fake_cluster.log_requests:
        assert (options.since_seconds, options.previous, options.tail_lines) == (600, True, 50)


def test_logs_read_only_the_agents_replica_pods(kubectl_agent, fake_cluster):
    kubectl_agent("logs", "demo")

    assert ("list_pods", "team-a", "app.kubernetes.io/instance=demo") in fake_cluster.calls
    assert "demo-operator-7d9f8-abcde" not in {pod for pod, _ in fake_cluster.log_requests}


def test_a_replica_whose_log_cannot_be_read_is_reported_and_the_others_still_print(
    kubectl_agent, fake_cluster
):
    fake_cluster.log_errors["demo-1"] = OperationFailed("previous terminated container not found")

    result = kubectl_agent("logs", "demo", "--previous")

    assert result.code == 0
    assert "demo-1: previous terminated container not found" in result.err
    assert {line.split()[0] for line in result.out.splitlines()} == {"demo-0"}


def test_logs_fail_when_no_replica_log_can_be_read(kubectl_agent, fake_cluster):
    for pod in ("demo-0", "demo-1"):
        fake_cluster.log_errors[pod] = OperationFailed("container is waiting to start")

    assert kubectl_agent("logs", "demo").code == 1


def test_logs_of_an_agent_without_pods_say_so(kubectl_agent, fake_cluster):
    fake_cluster.pods = []

    result = kubectl_agent("logs", "demo")

    assert result.code == 0
    assert "has no pods" in result.err


def test_follow_prints_new_lines_after_the_history_without_repeating_it(
    kubectl_agent, fake_cluster
):
    fake_cluster.follow_lines = {
        "demo-0": [
            '2026-11-26T10:00:02.000000000Z {"level": "warning", "message": "rate limited"}',
            "2026-11-26T10:00:04.000000001Z plain text from a library",
            "2026-11-26T10:00:09.000000000Z new line from demo-0",
        ],
        "demo-1": ["2026-11-26T10:00:10.000000000Z new line from demo-1"],
    }

    out = kubectl_agent("logs", "demo", "-f").out.splitlines()

    assert len(out) == 7
    assert out.count("demo-0  2026-11-26T10:00:04.000Z  plain text from a library") == 1
    assert {out[5].split(maxsplit=2)[2], out[6].split(maxsplit=2)[2]} == {
        "new line from demo-0",
        "new line from demo-1",
    }


def test_follow_streams_reach_back_a_little_so_no_line_is_lost(kubectl_agent, fake_cluster):
    kubectl_agent("logs", "demo", "-f")

    follow_options = fake_cluster.log_requests[2:]
    assert {options.since_seconds for _, options in follow_options} == {5}


def test_follow_cannot_be_combined_with_previous(kubectl_agent):
    result = kubectl_agent("logs", "demo", "-f", "--previous")

    assert result.code == 2
    assert result.err.startswith("error: --previous cannot be combined with -f")


def test_lines_with_equal_times_keep_the_order_of_replicas():
    a = [LogLine("demo-0", 5, "a1"), LogLine("demo-0", 7, "a2")]
    b = [LogLine("demo-1", 5, "b1"), LogLine("demo-1", 6, "b2")]

    assert [line.text for line in merge([a, b])] == ["a1", "b1", "b2", "a2"]


def test_a_line_without_timestamp_keeps_the_time_of_the_line_before():
    lines = parse_log("demo-0", "2026-11-26T10:00:00Z first\ncontinued traceback line\n")

    assert lines[1].nanos == lines[0].nanos
    assert lines[1].text == "continued traceback line"


def test_nanosecond_timestamps_order_lines_within_one_microsecond():
    early = parse_log("p", "2026-11-26T10:00:00.000000001Z x")[0]
    late = parse_log("p", "2026-11-26T10:00:00.000000002Z y")[0]

    assert early.nanos < late.nanos


def test_json_that_is_not_an_object_prints_unchanged():
    assert pretty_text("[1, 2]") == "[1, 2]"
    assert pretty_text("{broken") == "{broken"


def test_the_runtimes_log_line_reads_as_level_logger_message_and_fields():
    line = (
        '{"time":"2026-11-26T10:00:00.100+00:00","level":"info","logger":"agent_runtime.state",'
        '"message":"checkpoint written","agent":"demo","replica":"demo-0","request_id":"r-1",'
        '"generation":7,"bytes":4096}'
    )

    assert pretty_text(line) == (
        "INFO  [state] checkpoint written request_id=r-1 generation=7 bytes=4096"
    )

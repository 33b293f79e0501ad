"""`kubectl agent metrics`: counters per replica and in total, once or refreshing."""

from __future__ import annotations

import json

import pytest


def test_metrics_show_each_replica_and_a_total_row(kubectl_agent):
    lines = kubectl_agent("metrics", "demo").out.splitlines()

    assert lines[0].split()[:3] == ["REPLICA", "REQUESTS", "OK"]
    assert lines[1].split() == ["demo-0", "70", "66", "0", "1", "3", "0", "1.4%", "3.1ms", "9.5ms"]
    assert lines[2].split() == [
        "demo-1",
        "50",
        "38",
        "4",
        "5",
        "6",
        "1",
        "10.0%",
        "4.0ms",
        "14.0ms",
    ]
    assert lines[3].split() == [
        "TOTAL",
        "120",
        "104",
        "4",
        "6",
        "9",
        "1",
        "5.0%",
        "4.0ms",
        "14.0ms",
    ]


def test_metrics_total_sums_counters_and_takes_the_worst_percentile(kubectl_agent):
    total = json.loads(kubectl_agent("metrics", "demo", "-o", "json").out)["total"]

    assert total["requests"] == 120
    assert total["throttled"] == 9
    assert total["errorRate"] == pytest.approx(0.05)
    assert total["p95Ms"] == 14.0


def test_metrics_mark_a_replica_without_heartbeat(kubectl_agent, fake_cluster):
    fake_cluster.leases = fake_cluster.leases[:1]

    out = kubectl_agent("metrics", "demo").out

    assert "demo-1 (no heartbeat)" in out
    assert out.splitlines()[3].split()[:2] == ["TOTAL", "70"]


def test_metrics_watch_refreshes_until_interrupted(kubectl_agent, fake_cluster, clock):
    def grow() -> None:
        beat = fake_cluster.leases[0]["metadata"]["annotations"]
        record = json.loads(beat["agentry.dev/heartbeat"])
        record["metrics"]["requests"] = 80
        beat["agentry.dev/heartbeat"] = json.dumps(record)

    def interrupt() -> None:
        raise KeyboardInterrupt

    clock.reactions += [grow, interrupt]

    result = kubectl_agent("metrics", "demo", "--watch", "-i", "5", "-o", "json")

    documents = [json.loads(line) for line in result.out.splitlines()]
    assert result.code == 0
    assert [d["total"]["requests"] for d in documents] == [120, 130]
    assert clock.slept == [5.0, 5.0]
    assert documents[1]["time"] == "2026-11-26T10:00:05Z"


def test_metrics_watch_as_a_table_stamps_every_refresh(kubectl_agent, clock):
    def interrupt() -> None:
        raise KeyboardInterrupt

    clock.reactions.append(interrupt)

    out = kubectl_agent("metrics", "demo", "-w").out

    assert out.startswith("2026-11-26T10:00:00Z  (every 2s, Ctrl-C to stop)")

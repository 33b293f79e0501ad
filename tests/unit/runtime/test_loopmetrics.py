"""The request path's plain-number metrics scrape exactly as prometheus_client's own types."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from agent_runtime.loopmetrics import LoopCounter, LoopHistogram

BUCKETS = (0.001, 0.01, 0.1, 1, 10)
# On a bound, below the first, between two, above the last, and a whole number.
OBSERVATIONS = [0.001, 0.0002, 0.05, 11.0, 1, 0.001, 3]


def exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape's lines, sorted, with each ``_created`` time replaced by a placeholder."""
    text = generate_latest(registry).decode()
    return sorted(
        re.sub(r"(_created(\{[^}]*\})?) \S+$", r"\1 T", line) for line in text.splitlines()
    )


@pytest.mark.parametrize("labelnames", [(), ("provider", "kind")])
def test_a_histogram_scrapes_as_prometheus_clients_histogram(labelnames: tuple[str, ...]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("x_seconds", "Time of x", labelnames, BUCKETS, registry=ours)
    reference = Histogram("x_seconds", "Time of x", labelnames, buckets=BUCKETS, registry=theirs)
    values = ("builtin", "input")[: len(labelnames)]
    child = loop.labels(*values)
    expected = reference.labels(*values) if labelnames else reference
    for amount in OBSERVATIONS:
        child.observe(amount)
        expected.observe(amount)
    assert exposition(ours) == exposition(theirs)
    inf = [line for line in exposition(ours) if 'le="+Inf"' in line]
    assert len(inf) == 1
    assert inf[0].endswith(" 7.0")  # every observation counted


def test_a_counter_scrapes_as_prometheus_clients_counter() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("x_requests", "Requests by outcome", ["outcome"], registry=ours)
    reference = Counter("x_requests", "Requests by outcome", ["outcome"], registry=theirs)
    for outcome in ("ok", "ok", "throttled"):
        loop.labels(outcome).inc()
        reference.labels(outcome).inc()
    loop.labels("server_error")  # looked up, never counted: still a series at 0
    reference.labels("server_error")
    assert exposition(ours) == exposition(theirs)
    assert 'x_requests_total{outcome="ok"} 2.0' in exposition(ours)

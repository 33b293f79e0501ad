"""The pure parts of benchmarks/operator.py: the operator's requests told apart by its
FlowSchema in the API server's metrics, the growth per 100 Agents, and the report's
verdict rows. No cluster: the benchmark itself runs with ``python -m benchmarks --operator``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from benchmarks import operator as bench

METRICS = "\n".join(
    [
        "# HELP apiserver_request_total Counter of apiserver requests",
        'apiserver_request_total{code="200",resource="secrets",verb="GET"} 7',
        'apiserver_request_total{code="200",resource="agents",subresource="status",verb="PATCH"} 3',
        'apiserver_request_total{code="200",verb="GET"} 99',
        "apiserver_flowcontrol_dispatched_requests_total"
        '{flow_schema="agentry-operator",priority_level="agentry-operator"} 12',
        "apiserver_flowcontrol_dispatched_requests_total"
        '{flow_schema="service-accounts",priority_level="workload-low"} 40',
    ]
)


class FakeClient:
    def get(self, path: str, timeout: float = 5.0) -> Any:
        assert path == "/metrics"
        return argparse.Namespace(body=METRICS.encode())


def step(agents: int, created: int, rss: float, rest: float, drift: float) -> bench.Step:
    return bench.Step(
        agents, created, 1.0, created / 25, rss, 20 * created, 21 * created, Counter(),
        created * 0.03, (1.5, 2.5),
        rest_operator_per_agent_minute=rest, drift_seconds={"Service": drift},
    )  # fmt: skip


def test_the_operators_requests_are_counted_apart_from_all_clients() -> None:
    totals = bench.Bench.request_totals(argparse.Namespace(client=FakeClient()))  # type: ignore[arg-type]
    operator, by_resource = bench._split(totals)
    assert operator == 12  # its FlowSchema only, not the service-accounts schema
    assert by_resource == Counter({("GET", "secrets"): 7, ("PATCH", "agents/status"): 3})


def test_growth_is_per_100_more_agents_from_the_first_wave_to_the_last() -> None:
    steps = [step(100, 100, 150, 0.04, 0.3), step(300, 200, 160, 0.03, 0.5)]
    steps.append(step(1000, 700, 240, 0.04, 0.2))
    assert bench._slope(steps, lambda s: s.rss_mb) == 10.0
    args = argparse.Namespace(waves="100,300,1000", rest_seconds=60.0, namespaces=5)
    report = bench.render(args, 115.0, steps, 900.0)
    assert "| at rest, operator requests per Agent per minute (1000) | 0.040 | ≤ 0.2 |" in report
    assert "| drift put back (slowest, any wave) | 0.50 s | ≤ 5 s |" in report
    assert "| Agents reconciled per second (200 new) | 25.0 | ≥ 20 |" in report
    assert "RSS +10.0 MB" in report
    assert "| 300 (+200) | 8.0 s | 25.0 | 1.5-2.5 | 6.0 s (30 ms / Agent) | 160 MB |" in report

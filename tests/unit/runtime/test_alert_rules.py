"""The chart's alerts can fire: they use only metrics and labels that exist (issue 18.1).

Renders the PrometheusRule and the monitors with helm, parses every alert expression with
promql-parser, and checks each metric name, each label (matchers, `by`, `on`, `group_*`)
and each `outcome` value against what is really exposed: a runtime app started in-process
(as the other tests here start it) and the operator's registry, both read from their
/metrics text, plus the target labels that the Prometheus Operator and the monitors'
relabelings add. Also checks the runtime's checkpoint-timestamp gauge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import promql_parser as promql
import pytest
from agentry_operator import metrics as operator_metrics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_runtime.metrics import OUTCOMES
from agent_runtime.services import SERVICES
from tests.support.chart import render
from tests.support.runtime import MakeClient

# Labels the Prometheus Operator puts on every target of a PodMonitor / ServiceMonitor.
POD_TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint"}
SERVICE_TARGET_LABELS = POD_TARGET_LABELS | {"service"}
# Exposition-only labels of histograms and summaries.
SERIES_LABELS = {"le", "quantile"}

Exported = dict[str, set[str]]  # metric name -> its label names


def labels_of(exposition: str) -> Exported:
    """Every sample name in a /metrics text with the label names it carries."""
    out: Exported = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def sample(exposition: str, name: str) -> float:
    """The value of the unlabelled sample `name` in a /metrics text."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and not found.labels:
                return float(found.value)
    raise AssertionError(f"{name} not exported")


async def runtime_exposition(make_client: MakeClient) -> str:
    """GET /metrics of a runtime that served a turn and wrote a checkpoint."""
    client = await make_client()
    response = await client.post("/v1/sessions/s1/messages", json={"content": "hi"})
    assert response.status == 200, await response.text()
    await client.app[SERVICES].sessions.checkpoint(force=True)
    return await (await client.get("/metrics")).text()


def operator_exposition() -> str:
    """The operator registry's text after the steps the handlers record: an ok step, a
    failing one and a phase (labelled series exist only once used)."""
    with operator_metrics.timed("converge"):
        pass
    with pytest.raises(RuntimeError), operator_metrics.timed("converge"):
        raise RuntimeError("recorded as an error")
    operator_metrics.set_phase("alert-rules/test", "Running")
    operator_metrics.set_phase("alert-rules/test", None)
    return generate_latest(operator_metrics.REGISTRY).decode()


def relabelled(monitor: dict[str, Any], endpoints: str) -> set[str]:
    """Target labels a monitor's relabelings add (`agent` from the pod label)."""
    return {
        relabel["targetLabel"]
        for endpoint in monitor["spec"][endpoints]
        for relabel in endpoint.get("relabelings", [])
        if "targetLabel" in relabel
    }


def rendered() -> tuple[list[str], set[str]]:
    """(every alert expression, the labels the PodMonitor adds to agent series)."""
    docs = render("prometheusRule.enabled=true", "podMonitor.enabled=true")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    pod_monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    return exprs, POD_TARGET_LABELS | relabelled(pod_monitor, "podMetricsEndpoints")


def nodes(expr: Any) -> Iterator[Any]:
    """Every node of a parsed expression, depth first."""
    found: list[Any] = []
    promql.walk(expr, pre_visit=lambda node: found.append(node))
    yield from found


def selectors(expr: Any) -> list[Any]:
    return [node for node in nodes(expr) if isinstance(node, promql.VectorSelector)]


def grouping_labels(expr: Any) -> Iterator[tuple[set[str], list[Any]]]:
    """(labels named in by/without/on/ignoring/group_*, the selectors they apply to)."""
    for node in nodes(expr):
        if isinstance(node, promql.AggregateExpr) and node.modifier is not None:
            yield set(node.modifier.labels), selectors(node.expr)
        elif isinstance(node, promql.BinaryExpr) and node.modifier is not None:
            named = set(node.modifier.group_labels or [])
            if node.modifier.matching is not None:
                named |= set(node.modifier.matching.labels)
            yield named, selectors(node.lhs) + selectors(node.rhs)


@pytest.fixture
async def exported(make_client: MakeClient) -> tuple[Exported, Exported]:
    return labels_of(await runtime_exposition(make_client)), labels_of(operator_exposition())


def allowed(name: str, exported: tuple[Exported, Exported], pod_labels: set[str]) -> set[str]:
    """The labels a scraped series of `name` has: its own plus its monitor's."""
    runtime, operator = exported
    if name in runtime:
        return (runtime[name] - SERIES_LABELS) | pod_labels
    return (operator[name] - SERIES_LABELS) | SERVICE_TARGET_LABELS


def test_the_rules_and_the_pod_monitor_render() -> None:
    exprs, pod_labels = rendered()
    assert len(exprs) == 4
    assert "agent" in pod_labels


async def test_every_metric_in_the_alerts_is_exported(
    exported: tuple[Exported, Exported],
) -> None:
    runtime, operator = exported
    exprs, _ = rendered()
    used = {s.name for expr in exprs for s in selectors(promql.parse(expr))}
    assert used, "no metric found in the rules"
    assert used <= runtime.keys() | operator.keys(), sorted(used - runtime.keys() - operator.keys())


async def test_every_label_in_the_alerts_exists_on_the_series_it_selects(
    exported: tuple[Exported, Exported],
) -> None:
    exprs, pod_labels = rendered()
    missing: list[str] = []
    for expr in map(promql.parse, exprs):
        for selector in selectors(expr):
            have = allowed(selector.name, exported, pod_labels)
            missing += [
                f"{selector.name}{{{m.name}}}"
                for m in selector.matchers.matchers
                if m.name not in have
            ]
        for named, selected in grouping_labels(expr):
            for selector in selected:
                have = allowed(selector.name, exported, pod_labels)
                missing += [f"{selector.name} by/on {label}" for label in named - have]
    assert not missing, missing


def test_every_outcome_the_alerts_match_is_one_the_runtime_counts() -> None:
    exprs, _ = rendered()
    matched: set[str] = set()
    for expr in map(promql.parse, exprs):
        for selector in selectors(expr):
            for matcher in selector.matchers.matchers:
                if matcher.name == "outcome":
                    matched |= set(matcher.value.split("|"))
    assert matched, "the alerts no longer look at outcomes"
    assert matched <= set(OUTCOMES), sorted(matched - set(OUTCOMES))


async def test_the_runtime_exports_when_its_last_checkpoint_succeeded(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    services = client.app[SERVICES]
    gauge = "agentry_runtime_checkpoint_last_success_timestamp_seconds"
    before = await (await client.get("/metrics")).text()
    assert sample(before, gauge) == 0.0
    await client.post("/v1/sessions/s1/messages", json={"content": "hi"})
    info = await services.sessions.checkpoint()
    assert info is not None
    after = await (await client.get("/metrics")).text()
    assert sample(after, gauge) == info.time.timestamp()

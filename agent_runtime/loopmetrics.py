"""Counters and histograms updated on every request, kept as plain numbers.

prometheus_client's ``Counter`` and ``Histogram`` take a lock for each increment (a
histogram observation takes two, after a walk over its buckets), so that any thread may
update them. The request path's metrics are only ever updated on the event loop's
thread, where no lock is needed: here an increment is an addition and an observation a
``bisect`` and two additions. Measured with callgrind on the runtime's request path
(issue 13), the five prometheus updates of a turn cost about 10 % of its instructions.

The registry reads them through ``collect``, as for any custom collector, with the names,
labels, bucket bounds and ``_created`` samples prometheus_client's own types export, so
scrapes, alerts and dashboards see no difference. A scrape also runs on the event loop
(``/metrics``), so it never sees an update half made.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]
# How prometheus_client writes a bucket's bound in ``le`` ("0.005", "1.0", "+Inf").
_bound_text: Callable[[float], str] = floatToGoString


class LoopCounter:
    """A counter family for one thread; ``labels(...)`` gives the child to ``inc``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[Labels, CounterChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> CounterChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(values, child.value, created=child.created)
        yield family


class CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram family for one thread; ``labels(...)`` gives the child to ``observe``
    (without label names, the family is its own only child's parent: use ``child()``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        self._children: dict[Labels, HistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> HistogramChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self._bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(values, child.cumulative_buckets(), child.sum)
            labels = dict(zip(self._labelnames, values, strict=True))
            family.samples.append(Sample(f"{self._name}_created", labels, child.created))
        yield family


class HistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf's own
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose bound is at least ``amount``."""
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        total = 0
        buckets = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append((_bound_text(bound), float(total)))
        return buckets

"""The local cluster's figures: time to ready, a pod from creation to Ready, and the
control plane's memory, measured on a throwaway cluster with cached binaries
(`agentry_cluster.measure`). Written to the `cluster-benchmark` section of
docs/benchmarks.md by `python -m benchmarks --cluster` (root needed)."""

from __future__ import annotations

import datetime

from agentry_cluster.measure import measure

from benchmarks.report import machine, write_section

TARGETS = {"ready": 20.0, "pod": 3.0, "rss": 1536.0}


def main() -> int:
    result = measure(with_node=True, settle=10.0, pods=5)
    pod = result.pod_ready_median or float("nan")
    figures = [
        (
            "cluster ready (cached binaries: node, kube-proxy synced, DNS answering)",
            f"{result.ready_seconds:.1f} s",
            f"< {TARGETS['ready']:.0f} s",
        ),
        (
            f"pod created → Ready (median of {len(result.pod_ready_seconds)}, kubectl polls)",
            f"{pod:.2f} s",
            f"< {TARGETS['pod']:.0f} s",
        ),
        (
            f"control plane RSS ({result.settle_seconds:.0f} s after ready)",
            f"{result.control_plane_rss_mib:.0f} MiB",
            f"< {TARGETS['rss']:.0f} MiB",
        ),
    ]
    table = "\n".join(f"| {name} | {value} | {target} |" for name, value, target in figures)
    rows = "\n".join(f"| {name} | {mib:.0f} MiB |" for name, mib in sorted(result.rss_mib.items()))
    body = f"""## Local cluster

Command: `make bench` (`python -m benchmarks --cluster`), {datetime.date.today()}.
{machine()}
| figure | result | target |
|---|---|---|
{table}

| process | RSS |
|---|---|
{rows}

Pod times are seconds from `kubectl create` until the pod's Ready condition is True, polled
every 0.1 s with kubectl (its start-up included), so they are an upper bound.
"""
    write_section("cluster-benchmark", body)
    print(body)
    return 0

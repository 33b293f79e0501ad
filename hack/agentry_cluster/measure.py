"""`python -m agentry_cluster.measure`: how long a fresh cluster takes to be ready with
cached binaries, and how much memory its processes hold once settled.

It starts a throwaway cluster in a temporary directory, reports, and takes it down again.
The figures go into docs/benchmarks.md (targets: ready in under 20 s, control plane RSS
under 1.5 GB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from agentry_cluster import binaries, controlplane, processes
from agentry_cluster.errors import ClusterError
from agentry_cluster.layout import StateLayout

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager")
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Measurement:
    ready_seconds: float
    settle_seconds: float
    rss_mib: dict[str, float]
    control_plane_rss_mib: float
    with_node: bool


def measure(*, with_node: bool, settle: float) -> Measurement:
    bin_dir = binaries.ensure()  # outside the timing: the figure is for cached binaries
    root = Path(tempfile.mkdtemp(prefix="agentry-measure-"))
    layout = StateLayout(root)
    try:
        started = time.monotonic()
        info = controlplane.up(layout, "measure", bin_dir, with_node=with_node)
        ready = time.monotonic() - started
        time.sleep(settle)
        rss = {name: processes.rss_bytes(pid) for name, pid in info.pids.items()}
    finally:
        controlplane.down(layout)
        shutil.rmtree(root, ignore_errors=True)
    return Measurement(
        ready_seconds=round(ready, 2),
        settle_seconds=settle,
        rss_mib={name: round(value / MIB, 1) for name, value in rss.items()},
        control_plane_rss_mib=round(sum(rss.get(n, 0) for n in CONTROL_PLANE) / MIB, 1),
        with_node=with_node,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentry_cluster.measure", description=__doc__)
    parser.add_argument("--no-node", action="store_true", help="control plane only")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds to wait before reading RSS"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        result = measure(with_node=not args.no_node, settle=args.settle)
    except ClusterError as err:
        print(f"measure: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(result)))
        return 0
    print(f"cluster ready in {result.ready_seconds} s (cached binaries)")
    print(f"RSS after {args.settle:.0f} s:")
    for name, mib in result.rss_mib.items():
        print(f"  {name:<24} {mib:8.1f} MiB")
    print(f"  {'control plane total':<24} {result.control_plane_rss_mib:8.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

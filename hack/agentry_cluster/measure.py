"""`python -m agentry_cluster.measure`: how long a fresh cluster takes to be ready with
cached binaries, and how much memory its processes hold once settled.

It starts a throwaway cluster in a temporary directory, reports, and takes it down again.
With the process node it also times pods from creation to Ready. The figures go into
docs/benchmarks.md through `python -m benchmarks --cluster` (targets: ready in under
20 s, a pod Ready in under 3 s, control plane RSS under 1.5 GB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import subprocess
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
    pod_ready_seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def pod_ready_median(self) -> float | None:
        return statistics.median(self.pod_ready_seconds) if self.pod_ready_seconds else None


POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  containers:
  - name: web
    image: ignored-by-the-process-node
    command: [python3, -m, http.server, "8080"]
    readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
"""


def time_pods_to_ready(layout: StateLayout, kubectl: Path, count: int) -> list[float]:
    """Seconds from `kubectl create` to the Ready condition for `count` pods, one by one
    (kubectl's own start-up and a 0.1 s poll are included, so this is an upper bound)."""

    def run(*args: str, stdin: str | None = None) -> str:
        command = [str(kubectl), f"--kubeconfig={layout.admin_kubeconfig}", *args]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=True)
        return done.stdout

    jsonpath = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    timings = []
    for index in range(count):
        name = f"measure-{index}"
        started = time.monotonic()
        run("create", "-f", "-", stdin=POD.format(name=name))
        while run("get", "pod", name, "-o", jsonpath).strip() != "True":
            if time.monotonic() - started > 60:
                raise ClusterError(f"pod {name} not Ready after 60 s")
            time.sleep(0.1)
        timings.append(round(time.monotonic() - started, 2))
        run("delete", "pod", name, "--wait=false")
    return timings


def measure(*, with_node: bool, settle: float, pods: int = 3) -> Measurement:
    bin_dir = binaries.ensure()  # outside the timing: the figure is for cached binaries
    root = Path(tempfile.mkdtemp(prefix="agentry-measure-"))
    layout = StateLayout(root)
    try:
        started = time.monotonic()
        info = controlplane.up(layout, "measure", bin_dir, with_node=with_node)
        ready = time.monotonic() - started
        time.sleep(settle)
        rss = {name: processes.rss_bytes(pid) for name, pid in info.pids.items()}
        timings = time_pods_to_ready(layout, bin_dir / "kubectl", pods) if with_node else []
    finally:
        controlplane.down(layout)
        shutil.rmtree(root, ignore_errors=True)
    return Measurement(
        ready_seconds=round(ready, 2),
        settle_seconds=settle,
        rss_mib={name: round(value / MIB, 1) for name, value in rss.items()},
        control_plane_rss_mib=round(sum(rss.get(n, 0) for n in CONTROL_PLANE) / MIB, 1),
        with_node=with_node,
        pod_ready_seconds=timings,
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
    if result.pod_ready_seconds:
        print(f"pod created → Ready: {result.pod_ready_seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

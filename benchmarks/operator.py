"""Operator benchmark: how fast the operator reconciles many suspended Agents, how much
memory it holds, and how many API requests each Agent costs, on the local cluster.

The chart installs the operator (default values: the intervals users get) on a fresh
local cluster that this module starts and stops itself, or on a running one named by
``AGENTRY_BENCH_CLUSTER_DIR`` / ``AGENTRY_CLUSTER_DIR`` (left running; its namespaces are
cleaned up). Then:

1. ``--agents`` (200) Agents with ``suspend: true`` over a few namespaces are created; the
   clock runs until every one has status phase Suspended with a current
   observedGeneration, and then every child is checked to exist.
2. The operator's RSS is read from /proc (the process node runs pods as local
   processes; a container's ID is ``process://PID``).
3. The API server's ``apiserver_request_total`` (``/metrics``, admin credentials) is
   read before and after; the benchmark's own requests are counted and subtracted.
4. The same at rest: requests per Agent per minute over ``--rest-seconds``.
5. More Agents up to ``--scale-to`` (1,000): time, RSS and the rest rate again.

Results go to the ``operator-benchmark`` section of docs/benchmarks.md. Needs root (the
local cluster does). ``python -m benchmarks.operator`` or ``python -m benchmarks --operator``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentry_cluster.apiclient import ApiClient
from agentry_cluster.layout import StateLayout

from benchmarks.report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "agentry"
RELEASE, RELEASE_NS = "agentry", "agentry-system"
BENCH_LABEL = "agentry.dev/benchmark"
AGENTS_PATH = "/apis/agentry.dev/v1alpha1"
REUSE_ENVS = ("AGENTRY_BENCH_CLUSTER_DIR", "AGENTRY_CLUSTER_DIR")
SECTION = "operator-benchmark"

# Every child a suspended Agent gets (no PDB: replicas ≤ 1), as cluster-wide list paths.
CHILDREN = {
    "ServiceAccount": "/api/v1/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/rolebindings",
    "Secret": "/api/v1/secrets",
    "ConfigMap": "/api/v1/configmaps",
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "Service": "/api/v1/services",
}

Progress = Callable[[str], None]
_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


# ---- the cluster ---------------------------------------------------------------------------


@dataclass
class Bench:
    """A running cluster as the benchmark uses it; counts its own resource requests."""

    layout: StateLayout
    info: dict[str, Any]
    own_requests: int = 0
    client: ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = ApiClient(self.info["server"], self.layout.pki)

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        self.own_requests += 1
        response = self.client.request(method, path, body, timeout=timeout)
        if response.status >= 400 and not (method == "POST" and response.status == 409):
            raise OSError(f"{method} {path}: HTTP {response.status}: {response.body[:300]!r}")
        return response.json() if response.body else {}

    def tool(self, name: str, *args: str) -> str:
        """Run kubectl or helm (built for this cluster) with the admin kubeconfig."""
        helm_home = self.layout.helm_home
        env = {
            **os.environ,
            "KUBECONFIG": str(self.layout.admin_kubeconfig),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        cmd = [str(Path(self.info["bin_dir"]) / name), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0:
            raise OSError(f"{' '.join(cmd)}: {result.stderr.strip()[-500:]}")
        return result.stdout

    def request_totals(self) -> Counter[tuple[str, str]]:
        """`apiserver_request_total` summed by (verb, resource[/subresource]), resources only."""
        response = self.client.get("/metrics", timeout=30)
        totals: Counter[tuple[str, str]] = Counter()
        for line in response.body.decode().splitlines():
            match = _METRIC.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match["labels"]))
            if not labels.get("resource"):
                continue  # /metrics, /healthz and other non-resource URLs
            resource = labels["resource"]
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            totals[(labels.get("verb", ""), resource)] += int(float(match["value"]))
        return totals


@contextmanager
def cluster(progress: Progress) -> Iterator[Bench]:
    """The cluster named by an environment variable, or a fresh one stopped afterwards."""
    from agentry_cluster import binaries, controlplane

    for env in REUSE_ENVS:
        if reuse := os.environ.get(env):
            layout = StateLayout(Path(reuse).absolute())
            if not controlplane.is_running(layout):
                raise SystemExit(f"{env}={reuse}: no running cluster there")
            yield Bench(layout, json.loads(layout.cluster_json.read_text()))
            return
    bin_dir = binaries.ensure()
    layout = StateLayout(Path(tempfile.mkdtemp(prefix="agentry-bench-cluster-")))
    controlplane.up(layout, "bench", bin_dir, progress=progress)
    try:
        yield Bench(layout, json.loads(layout.cluster_json.read_text()))
    finally:
        controlplane.down(layout, progress=progress)


# ---- the operator ----------------------------------------------------------------------------


def install_operator(bench: Bench) -> None:
    """The chart with its default values: the intervals a user gets."""
    bench.tool(
        "helm", "upgrade", "--install", RELEASE, str(CHART), "--namespace", RELEASE_NS,
        "--create-namespace", "--reset-values", "--wait", "--timeout", "180s",
    )  # fmt: skip


def operator_pid(bench: Bench, timeout: float = 120) -> int:
    """The PID of the operator's container process (the process node's `process://PID`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = bench.call("GET", f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                cid = status.get("containerID", "")
                if status.get("ready") and cid.startswith("process://"):
                    return int(cid.removeprefix("process://"))
        time.sleep(1)
    raise TimeoutError("no ready operator pod")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the Agents -----------------------------------------------------------------------------


def namespaces(count: int) -> list[str]:
    return [f"bench-op-{i}" for i in range(count)]


def agent_body(index: int, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {
            "name": f"bench-{index:04d}",
            "namespace": namespace,
            "labels": {BENCH_LABEL: "true"},
        },
        "spec": {"suspend": True},
    }


def create_agents(bench: Bench, first: int, last: int, spaces: list[str]) -> None:
    """Create Agents `first` … `last - 1`, round-robin over `spaces`, four at a time."""

    def create(index: int) -> None:
        namespace = spaces[index % len(spaces)]
        bench.call(
            "POST", f"{AGENTS_PATH}/namespaces/{namespace}/agents", agent_body(index, namespace)
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(first, last)))


def reconciled(bench: Bench) -> tuple[int, int]:
    """(reconciled, total) benchmark Agents: phase Suspended for the current generation."""
    items = bench.call("GET", f"{AGENTS_PATH}/agents?labelSelector={BENCH_LABEL}%3Dtrue")["items"]
    done = 0
    for agent in items:
        status = agent.get("status") or {}
        current = status.get("observedGeneration") == agent["metadata"].get("generation")
        done += status.get("phase") == "Suspended" and current
    return done, len(items)


def missing_children(bench: Bench, expected: int, spaces: list[str]) -> dict[str, int]:
    """Kinds with fewer labelled children in the benchmark namespaces than Agents."""
    missing = {}
    selector = "app.kubernetes.io/managed-by%3Dagentry-operator"
    for kind, path in CHILDREN.items():
        items = bench.call("GET", f"{path}?labelSelector={selector}")["items"]
        count = sum(item["metadata"]["namespace"] in spaces for item in items)
        if count < expected:
            missing[kind] = expected - count
    return missing


def wait_reconciled(
    bench: Bench, expected: int, spaces: list[str], timeout: float, progress: Progress
) -> None:
    """Until `expected` Agents show Suspended for their generation and all children exist.

    The children are listed only once every status is in place (listing is the expensive
    part), and again on each poll until none is missing.
    """
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        done, total = reconciled(bench)
        missing = missing_children(bench, expected, spaces) if done >= expected else {}
        if done >= expected and not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{done}/{expected} Agents reconciled after {timeout:.0f}s, missing {missing}"
            )
        if time.monotonic() - last_report > 10:
            progress(f"{done}/{expected} reconciled ({total} exist), children missing {missing}")
            last_report = time.monotonic()
        time.sleep(1)


def cleanup(bench: Bench, spaces: list[str], progress: Progress) -> None:
    """Delete the benchmark namespaces (the operator finalizes the Agents first)."""
    for namespace in spaces:
        bench.tool(
            "kubectl", "delete", "namespace", namespace, "--wait=false", "--ignore-not-found"
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        left = [ns for ns in spaces if bench.client.get(f"/api/v1/namespaces/{ns}").status != 404]
        if not left:
            return
        time.sleep(2)
    progress(f"namespaces still terminating: {', '.join(left)}")


# ---- one measurement -------------------------------------------------------------------------


@dataclass
class Step:
    """Figures for one wave of Agents."""

    agents: int  # Agents in the cluster after this wave
    created: int  # Agents created in this wave
    create_seconds: float
    reconcile_seconds: float  # from the first create until all are reconciled
    rss_mb: float
    requests: int  # API requests during the wave, the benchmark's own excluded
    by_resource: Counter[tuple[str, str]]
    rest_per_agent_minute: float = 0.0
    rest_cpu_percent: float = 0.0
    rest_by_resource: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.created / self.reconcile_seconds


def wave(
    bench: Bench, pid: int, first: int, last: int, spaces: list[str], progress: Progress
) -> Step:
    before = bench.request_totals()
    own = bench.own_requests
    started = time.monotonic()
    create_agents(bench, first, last, spaces)
    created = time.monotonic() - started
    wait_reconciled(bench, last, spaces, timeout=60 + (last - first), progress=progress)
    elapsed = time.monotonic() - started
    delta = bench.request_totals() - before
    total = sum(delta.values()) - (bench.own_requests - own) - 1  # the /metrics reads
    time.sleep(5)  # let the handlers' garbage settle before reading RSS
    rss = rss_mb(pid)
    progress(f"{last} Agents: {last - first} reconciled in {elapsed:.1f}s, RSS {rss:.0f} MB")
    return Step(last, last - first, created, elapsed, rss, total, delta)


def at_rest(bench: Bench, pid: int, step: Step, seconds: float, progress: Progress) -> None:
    """Requests per Agent per minute and operator CPU while nothing changes."""
    progress(f"at rest for {seconds:.0f}s with {step.agents} Agents")
    before, own, cpu = bench.request_totals(), bench.own_requests, cpu_seconds(pid)
    time.sleep(seconds)
    delta = bench.request_totals() - before
    total = sum(delta.values()) - (bench.own_requests - own)
    step.rest_per_agent_minute = total / step.agents / (seconds / 60)
    step.rest_cpu_percent = 100 * (cpu_seconds(pid) - cpu) / seconds
    step.rest_by_resource = delta


# ---- the report ------------------------------------------------------------------------------


def _top(counter: Counter[tuple[str, str]], per: float, n: int = 8) -> str:
    return ", ".join(
        f"{verb} {res} {count / per:.2f}" for (verb, res), count in counter.most_common(n)
    )


def render(args: argparse.Namespace, idle_rss: float, steps: list[Step], seconds: float) -> str:
    first, last = steps[0], steps[-1]
    lines = [
        "## Operator",
        "",
        f"Command: `python -m benchmarks.operator --agents {args.agents} --scale-to "
        f"{args.scale_to} --rest-seconds {args.rest_seconds:g}` (or `python -m benchmarks "
        f"--operator`), {datetime.now(UTC):%Y-%m-%d}, total {seconds:.0f} s.",
        machine().rstrip(),
        "",
        "The chart with default values (status every 15 s, drift every 120 s) on the local "
        f"cluster; Agents with `suspend: true` over {args.namespaces} namespaces, created four "
        "at a time. Reconciled = phase Suspended with a current observedGeneration, then "
        "every child (ServiceAccount, Role, RoleBinding, key Secret, ConfigMap, StatefulSet, "
        "Service) checked. API requests are the API server's `apiserver_request_total` "
        "(all clients, so the controller manager's reactions count too), the benchmark's "
        "own requests subtracted.",
        "",
        "| Agents | created in | all reconciled in | Agents/s | operator RSS "
        "| API requests / Agent | at rest: requests / Agent / min | at rest: operator CPU |",
        "|---|---|---|---|---|---|---|---|",
        f"| 0 | | | | {idle_rss:.0f} MB | | | |",
    ]
    for step in steps:
        lines.append(
            f"| {step.agents} (+{step.created}) | {step.create_seconds:.1f} s "
            f"| {step.reconcile_seconds:.1f} s | {step.rate:.1f} | {step.rss_mb:.0f} MB "
            f"| {step.requests / step.created:.1f} | {step.rest_per_agent_minute:.2f} "
            f"| {step.rest_cpu_percent:.0f} % |"
        )
    lines += [
        "",
        "| figure | result | target |",
        "|---|---|---|",
        f"| Agents reconciled per second ({first.created}) | {first.rate:.1f} | ≥ 10 |",
        f"| operator RSS at {last.agents} Agents | {last.rss_mb:.0f} MB | < 200 MB |",
        f"| API requests per Agent (reconcile, {first.created}) | "
        f"{first.requests / first.created:.1f} | — |",
        "",
        f"Requests per Agent while reconciling {first.created}: "
        f"{_top(first.by_resource, first.created)}.",
        "",
        f"Requests per Agent per minute at rest with {last.agents}: "
        f"{_top(last.rest_by_resource, last.agents * args.rest_seconds / 60) or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator")
    parser.add_argument("--agents", type=int, default=200, help="first wave (default 200)")
    parser.add_argument("--scale-to", type=int, default=1000, help="then up to (default 1000)")
    parser.add_argument("--namespaces", type=int, default=5)
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[operator bench {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr)

    with cluster(progress) as bench:
        spaces = namespaces(args.namespaces)
        for namespace in spaces:
            bench.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        install_operator(bench)
        pid = operator_pid(bench)
        time.sleep(5)
        idle = rss_mb(pid)
        progress(f"operator pid {pid}, RSS {idle:.0f} MB")
        try:
            steps = [wave(bench, pid, 0, args.agents, spaces, progress)]
            at_rest(bench, pid, steps[-1], args.rest_seconds, progress)
            if args.scale_to > args.agents:
                steps.append(wave(bench, pid, args.agents, args.scale_to, spaces, progress))
                at_rest(bench, pid, steps[-1], args.rest_seconds, progress)
        finally:
            if any(os.environ.get(env) for env in REUSE_ENVS):
                cleanup(bench, spaces, progress)
    body = render(args, idle, steps, time.monotonic() - started)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Operator benchmark: how fast the operator reconciles many suspended Agents, how much
memory it holds, how many API requests each Agent costs at rest, and how fast drift in a
child is put back, on the local cluster, in waves (100, 300, 1,000 Agents by default) so
that each figure's growth is measured, not only its value at one size.

The chart installs the operator (default values: the intervals and rate limit users get,
plus ``flowControl.enabled=true`` so its requests can be told apart) on a fresh local
cluster that this module starts and stops itself, or on a running one named by
``AGENTRY_BENCH_CLUSTER_DIR`` / ``AGENTRY_CLUSTER_DIR`` (left running; its namespaces are
cleaned up). For each wave:

1. Agents with ``suspend: true`` over a few namespaces are created up to the wave's size;
   the clock runs until every one has status phase Suspended with a current
   observedGeneration, and then every child is checked to exist.
2. The operator's RSS is read from /proc (the process node runs pods as local
   processes; a container's ID is ``process://PID``).
3. API requests, two ways, from the API server's ``/metrics`` (admin credentials):
   the operator's own, ``apiserver_flowcontrol_dispatched_requests_total`` of the
   chart's FlowSchema (it matches the operator's ServiceAccount only; a watch stream
   counts once when it is opened, its events not at all); and all clients'
   ``apiserver_request_total``, the benchmark's own requests subtracted.
4. The same at rest: requests per Agent per minute over ``--rest-seconds``.
5. Drift: one Agent's Service and ConfigMap are deleted; the time until each is back.

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
_DISPATCHED = re.compile(
    r"^apiserver_flowcontrol_dispatched_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)
FLOW_SCHEMA = f"{RELEASE}-operator"
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
        """`apiserver_request_total` summed by (verb, resource[/subresource]), resources
        only; and under ("operator", "") the requests the operator's FlowSchema let in."""
        response = self.client.get("/metrics", timeout=30)
        totals: Counter[tuple[str, str]] = Counter()
        for line in response.body.decode().splitlines():
            dispatched = _DISPATCHED.match(line)
            if dispatched and f'flow_schema="{FLOW_SCHEMA}"' in dispatched["labels"]:
                totals[("operator", "")] += int(float(dispatched["value"]))
                continue
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
    """The chart with its default values (the intervals a user gets), and the FlowSchema
    that lets the API server count the operator's requests apart from everyone else's;
    the operator's pod started anew."""
    bench.tool(
        "helm", "upgrade", "--install", RELEASE, str(CHART), "--namespace", RELEASE_NS,
        "--create-namespace", "--reset-values", "--set", "flowControl.enabled=true",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    # On a reused cluster an unchanged release keeps its pod, which still runs the code it
    # started with: a fresh one runs this checkout's (the process node runs it in place).
    deployment = f"deployment/{RELEASE}-operator"
    bench.tool("kubectl", "rollout", "restart", deployment, "--namespace", RELEASE_NS)
    bench.tool(
        "kubectl", "rollout", "status", deployment, "--namespace", RELEASE_NS, "--timeout=180s"
    )


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
    requests: int  # API requests during the wave, all clients, the benchmark's own excluded
    operator_requests: int  # the operator's own (its FlowSchema)
    by_resource: Counter[tuple[str, str]]
    cpu_seconds: float  # the operator's user + system CPU during the wave
    load: tuple[float, float]  # the machine's 1-minute load average at the start and end
    rest_per_agent_minute: float = 0.0
    rest_operator_per_agent_minute: float = 0.0
    rest_cpu_percent: float = 0.0
    rest_by_resource: Counter[tuple[str, str]] = field(default_factory=Counter)
    drift_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.created / self.reconcile_seconds


def _split(delta: Counter[tuple[str, str]]) -> tuple[int, Counter[tuple[str, str]]]:
    """(the operator's requests, all clients' by resource) from a `request_totals` delta."""
    operator = delta.pop(("operator", ""), 0)
    return operator, delta


def wave(
    bench: Bench, pid: int, first: int, last: int, spaces: list[str], progress: Progress
) -> Step:
    before = bench.request_totals()
    own = bench.own_requests
    cpu, load = cpu_seconds(pid), os.getloadavg()[0]
    started = time.monotonic()
    create_agents(bench, first, last, spaces)
    created = time.monotonic() - started
    wait_reconciled(bench, last, spaces, timeout=60 + (last - first), progress=progress)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu
    loads = (load, os.getloadavg()[0])
    operator, delta = _split(bench.request_totals() - before)
    total = sum(delta.values()) - (bench.own_requests - own) - 1  # the /metrics reads
    time.sleep(5)  # let the handlers' garbage settle before reading RSS
    rss = rss_mb(pid)
    progress(
        f"{last} Agents: {last - first} reconciled in {elapsed:.1f}s, RSS {rss:.0f} MB, "
        f"operator CPU {cpu:.1f} s, load {loads[0]:.1f}-{loads[1]:.1f}"
    )
    return Step(last, last - first, created, elapsed, rss, total, operator, delta, cpu, loads)


def at_rest(bench: Bench, pid: int, step: Step, seconds: float, progress: Progress) -> None:
    """Requests per Agent per minute and operator CPU while nothing changes."""
    progress(f"at rest for {seconds:.0f}s with {step.agents} Agents")
    before, own, cpu = bench.request_totals(), bench.own_requests, cpu_seconds(pid)
    time.sleep(seconds)
    operator, delta = _split(bench.request_totals() - before)
    total = sum(delta.values()) - (bench.own_requests - own)
    step.rest_per_agent_minute = total / step.agents / (seconds / 60)
    step.rest_operator_per_agent_minute = operator / step.agents / (seconds / 60)
    step.rest_cpu_percent = 100 * (cpu_seconds(pid) - cpu) / seconds
    step.rest_by_resource = delta


def drift(bench: Bench, namespace: str, agent: str, progress: Progress) -> dict[str, float]:
    """Delete the Agent's Service and ConfigMap; seconds until each is back (a new uid)."""
    took = {}
    for kind, name, plural in (
        ("Service", agent, "services"),
        ("ConfigMap", f"{agent}-config", "configmaps"),
    ):
        path = f"/api/v1/namespaces/{namespace}/{plural}/{name}"
        uid = bench.call("GET", path)["metadata"]["uid"]
        started = time.monotonic()
        bench.call("DELETE", path)
        while time.monotonic() - started < 120:
            response = bench.client.get(path, timeout=10)
            if response.status == 200 and response.json()["metadata"]["uid"] != uid:
                break
            time.sleep(0.05)
        took[kind] = time.monotonic() - started
    progress(", ".join(f"{kind} back in {seconds:.2f}s" for kind, seconds in took.items()))
    return took


# ---- the report ------------------------------------------------------------------------------


def _top(counter: Counter[tuple[str, str]], per: float, n: int = 8) -> str:
    return ", ".join(
        f"{verb} {res} {count / per:.2f}" for (verb, res), count in counter.most_common(n)
    )


def _slope(steps: list[Step], figure: Callable[[Step], float]) -> float:
    """Growth of a figure per 100 more Agents, from the first wave to the last."""
    first, last = steps[0], steps[-1]
    if last.agents == first.agents:
        return 0.0
    return 100 * (figure(last) - figure(first)) / (last.agents - first.agents)


def render(args: argparse.Namespace, idle_rss: float, steps: list[Step], seconds: float) -> str:
    first, last = steps[0], steps[-1]
    lines = [
        "## Operator",
        "",
        f"Command: `python -m benchmarks.operator --waves {args.waves} --rest-seconds "
        f"{args.rest_seconds:g}` (or `python -m benchmarks --operator`), "
        f"{datetime.now(UTC):%Y-%m-%d}, total {seconds:.0f} s.",
        machine().rstrip(),
        "",
        "The chart with default values (children watched by label, status from the heartbeat "
        "Lease watch every 15 s, key Secret safety net every 30 min spread ±10 %, client "
        "rate limit 300/s burst 600) plus `flowControl.enabled=true`, on the local cluster; "
        f"Agents with `suspend: true` over {args.namespaces} namespaces, created four at a "
        "time. Reconciled = phase Suspended with a current observedGeneration, then every "
        "child (ServiceAccount, Role, RoleBinding, key Secret, ConfigMap, StatefulSet, "
        "Service) checked. Operator requests: the API server's "
        "`apiserver_flowcontrol_dispatched_requests_total` of the chart's FlowSchema, which "
        "matches only the operator's ServiceAccount (a watch counts once when opened; its "
        "events are not requests). All clients: `apiserver_request_total`, the controller "
        "manager's reactions included, the benchmark's own requests subtracted. Drift: one "
        "Agent's Service and ConfigMap deleted after the rest period, time until each exists "
        "again (polled every 50 ms).",
        "",
        "| Agents | all reconciled in | Agents/s | load (1 min, start-end) "
        "| operator CPU in the wave | operator RSS | operator requests / Agent "
        "| at rest: operator requests / Agent / min | at rest: all clients | at rest: CPU "
        "| drift put back (Service, ConfigMap) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| 0 | | | | | {idle_rss:.0f} MB | | | | | |",
    ]
    for step in steps:
        lines.append(
            f"| {step.agents} (+{step.created}) | {step.reconcile_seconds:.1f} s "
            f"| {step.rate:.1f} | {step.load[0]:.1f}-{step.load[1]:.1f} "
            f"| {step.cpu_seconds:.1f} s ({1000 * step.cpu_seconds / step.created:.0f} ms "
            f"/ Agent) | {step.rss_mb:.0f} MB "
            f"| {step.operator_requests / step.created:.1f} "
            f"| {step.rest_operator_per_agent_minute:.3f} | {step.rest_per_agent_minute:.3f} "
            f"| {step.rest_cpu_percent:.0f} % "
            f"| {', '.join(f'{v:.2f} s' for v in step.drift_seconds.values())} |"
        )
    by_200 = next((step for step in steps if step.created == 200), None)
    worst_drift = max(max(step.drift_seconds.values(), default=0) for step in steps)
    lines += [
        "",
        "| figure | result | target |",
        "|---|---|---|",
        f"| at rest, operator requests per Agent per minute ({last.agents}) "
        f"| {last.rest_operator_per_agent_minute:.3f} | ≤ 0.2 |",
        f"| drift put back (slowest, any wave) | {worst_drift:.2f} s | ≤ 5 s |",
        f"| operator RSS at {last.agents} Agents | {last.rss_mb:.0f} MB | ≤ 150 MB |",
    ]
    if by_200 is not None:
        lines.append(f"| Agents reconciled per second (200 new) | {by_200.rate:.1f} | ≥ 20 |")
    lines += [
        "",
        f"Growth from {first.agents} to {last.agents} Agents, per 100 more: RSS "
        f"{_slope(steps, lambda s: s.rss_mb):+.1f} MB; at-rest operator requests per Agent per "
        f"minute {_slope(steps, lambda s: s.rest_operator_per_agent_minute):+.4f}; at-rest "
        f"CPU {_slope(steps, lambda s: s.rest_cpu_percent):+.2f} % of a core; drift put-back "
        f"{_slope(steps, lambda s: max(s.drift_seconds.values(), default=0)):+.3f} s.",
        "",
        f"Requests per Agent while reconciling {first.created} (all clients): "
        f"{_top(first.by_resource, first.created)}.",
        "",
        f"Requests per Agent per minute at rest with {last.agents} (all clients): "
        f"{_top(last.rest_by_resource, last.agents * args.rest_seconds / 60) or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator")
    parser.add_argument(
        "--waves", default="100,300,1000", help="Agents after each wave (default 100,300,1000)"
    )
    parser.add_argument("--namespaces", type=int, default=5)
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.waves.split(",")]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        parser.error(f"--waves {args.waves}: increasing Agent counts, such as 100,300,1000")
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
        steps: list[Step] = []
        try:
            for first, last in zip([0, *sizes], sizes, strict=False):
                steps.append(wave(bench, pid, first, last, spaces, progress))
                at_rest(bench, pid, steps[-1], args.rest_seconds, progress)
                steps[-1].drift_seconds = drift(bench, spaces[0], "bench-0000", progress)
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

"""`agentry-cluster up|down|status`: the local cluster by hand (and for `make cluster-*`).

`up` builds the binaries first when needed, starts a fresh cluster and prints how to use
it; `down` stops it (the state directory stays, with its logs); `status` says what runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agentry_cluster import binaries, clusterdns, controlplane, kubeproxy
from agentry_cluster.apiclient import ApiClient
from agentry_cluster.errors import CannotRunHere, ClusterError
from agentry_cluster.layout import (
    DEFAULT_NAME,
    ClusterInfo,
    StateLayout,
    default_state_dir,
    read_info,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentry-cluster",
        description="The local Kubernetes cluster: upstream control plane plus a process node.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (
        ("up", "start a fresh cluster (builds the binaries the first time)"),
        ("down", "stop the cluster and delete its bridge; its files and logs stay"),
        ("status", "show the cluster's processes and kubeconfig (exit 1 if not running)"),
    ):
        cmd = sub.add_parser(command, help=text, description=text)
        cmd.add_argument("--name", default=DEFAULT_NAME, help="cluster name (default: %(default)s)")
        cmd.add_argument(
            "--state-dir",
            type=Path,
            help="state directory (default: ~/.local/state/agentry/clusters/NAME)",
        )
        if command == "up":
            cmd.add_argument(
                "--no-node",
                action="store_true",
                help="control plane only: do not start the process node (pods stay Pending)",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state_dir = (args.state_dir or default_state_dir(args.name)).absolute()
    layout = StateLayout(state_dir)
    try:
        if args.command == "up":
            return _up(layout, args.name, with_node=not args.no_node)
        if args.command == "down":
            return _down(layout)
        return _status(layout)
    except CannotRunHere as err:
        print(f"agentry-cluster: {err}", file=sys.stderr)
        return 2
    except ClusterError as err:
        print(f"agentry-cluster: {err}", file=sys.stderr)
        return 1


def _up(layout: StateLayout, name: str, *, with_node: bool) -> int:
    controlplane.check_can_start(layout)  # before a possibly long build
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", file=sys.stderr, flush=True)

    progress("checking the cluster binaries (a first run builds them)")
    bin_dir = binaries.ensure()
    progress(f"binaries in {bin_dir}")
    info = controlplane.up(layout, name, bin_dir, with_node=with_node, progress=progress)
    progress(f"cluster {name!r} is up")
    database_line = (
        f"\n  export AGENTRY_POSTGRES_URL={info.postgres_url}   # host and pods alike"
        if info.postgres_url
        else ""
    )
    print(
        f"""
Use it:
  export KUBECONFIG={layout.admin_kubeconfig}{database_line}
  export PATH={info.bin_dir}:$PATH      # kubectl and helm built for this cluster
  kubectl get nodes
Logs: {layout.logs}/
Stop it: agentry-cluster down{_name_flags(layout, name)}"""
    )
    return 0


def _down(layout: StateLayout) -> int:
    if read_info(layout) is None:
        print(f"no cluster in {layout.root}: nothing to stop", file=sys.stderr)
        return 0
    stopped = controlplane.down(layout, progress=lambda m: print(m, file=sys.stderr))
    print(f"cluster in {layout.root} stopped ({len(stopped)} processes); files and logs kept")
    return 0


def _status(layout: StateLayout) -> int:
    info = read_info(layout)
    if info is None:
        print(f"no cluster in {layout.root}")
        return 1
    running = controlplane.running_processes(layout, info)
    state = "running" if running and all(running.values()) else "not running"
    if running and any(running.values()) and not all(running.values()):
        state = "degraded"
    print(f"cluster {info.name!r}: {state}")
    print(f"  server      {info.server} (pods: {info.pod_server_host}:{info.pod_server_port})")
    print(f"  bridge      {info.bridge} {info.bridge_ip} pods {info.pod_cidr}")
    if info.node_netns:
        print(f"  network     namespace {info.node_netns}, host {info.host_ip}")
        print(f"  services    {info.service_cidr}, DNS {info.dns_ip} ({info.cluster_domain})")
    print(f"  kubeconfig  {layout.admin_kubeconfig}")
    print(f"  logs        {layout.logs}/")
    if info.postgres_port:
        print(
            f"  postgres    {info.host_ip}:{info.postgres_port} (database agentry; "
            "`up` printed its AGENTRY_POSTGRES_URL)"
        )
    for proc, pid in info.pids.items():
        detail = f" ({kubeproxy.MODE} mode)" if proc == "kube-proxy" else ""
        print(f"  {proc:<24} pid {pid:<8} {'up' if running.get(proc) else 'down'}{detail}")
    if running.get("node"):
        print(f"  {'coredns':<24} {_coredns_state(layout, info)}")
    return 0 if state == "running" else 1


def _coredns_state(layout: StateLayout, info: ClusterInfo) -> str:
    """The CoreDNS Deployment's ready replicas, and whether DNS answers by its Service."""
    path = f"/apis/apps/v1/namespaces/{clusterdns.NAMESPACE}/deployments/coredns"
    try:
        resp = ApiClient(info.server, layout.pki).get(path, timeout=2)
    except OSError as exc:
        return f"unknown (API server: {exc})"
    if resp.status != 200:
        return "not installed"
    status = resp.json().get("status") or {}
    ready = f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)} ready"
    answering = clusterdns.answers(info.node_netns, info.dns_ip, info.cluster_domain)
    return f"{ready}, {'answers' if answering else 'does not answer'} on {info.dns_ip}:53"


def _name_flags(layout: StateLayout, name: str) -> str:
    if layout.root == default_state_dir(name).absolute():
        return "" if name == DEFAULT_NAME else f" --name {name}"
    return f" --state-dir {layout.root}"


if __name__ == "__main__":
    sys.exit(main())

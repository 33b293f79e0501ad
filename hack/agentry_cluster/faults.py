"""Faults for the chaos suite: etcd or the API server stopped and started again, and a
pod cut off from the API server.

The chaos suite (tests/chaos) takes a control-plane process away and brings it back while
the operator works. `stop` ends the process and returns its command line; `start` runs
that command line again, appending to the same log, records the new pid in
`cluster.json` (so `down` still stops it) and waits until the component answers.
`stopped` does both around a block. Data survives: etcd keeps its data directory, and the
API server keeps nothing of its own. `cut_off_from_api_server` drops a pod's packets to
the API server with an nft table in the pod's network namespace, removed after the block.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from agentry_cluster import controlplane, processes
from agentry_cluster.errors import ClusterError, StartFailed
from agentry_cluster.layout import ClusterInfo, StateLayout, read_info, write_info

RESTARTABLE = ("etcd", "kube-apiserver")


def _info(layout: StateLayout) -> ClusterInfo:
    info = read_info(layout)
    if info is None:
        raise ClusterError(f"no cluster in {layout.root}")
    return info


def _answers(layout: StateLayout, info: ClusterInfo, proc: str) -> Callable[[], bool]:
    if proc == "etcd":
        return lambda: controlplane.etcd_healthy(info.etcd_server)
    return lambda: controlplane.apiserver_ready(layout, info)


def stop(layout: StateLayout, proc: str, *, kill: bool = False) -> list[str]:
    """Stop `proc` (SIGTERM, or SIGKILL with `kill`); its command line, to start it again."""
    if proc not in RESTARTABLE:
        raise ValueError(f"{proc!r}: only {', '.join(RESTARTABLE)} can be stopped and started")
    pid = _info(layout).pids[proc]
    args = processes.cmdline(pid)
    if not args or not processes.belongs_to(pid, layout.root):
        raise ClusterError(f"{proc} (pid {pid}) is not running in {layout.root}")
    grace = 0.0 if kill else controlplane.STOP_GRACE[proc]
    processes.stop(pid, layout.root, grace=grace)
    return args


def start(layout: StateLayout, proc: str, args: list[str], timeout: float = 90.0) -> int:
    """Run `args` as `proc` again and wait until it answers; the new pid."""
    info = _info(layout)
    pid = processes.start(args, layout.log(proc))
    info.pids[proc] = pid
    write_info(layout, info)
    ready = _answers(layout, info, proc)
    deadline = time.monotonic() + timeout
    while not ready():
        if not processes.is_running(pid):
            raise StartFailed(f"{proc} exited when started again (log: {layout.log(proc)})")
        if time.monotonic() > deadline:
            raise StartFailed(f"{proc} not answering {timeout:.0f}s after its restart")
        time.sleep(0.1)
    return pid


@contextmanager
def stopped(layout: StateLayout, proc: str, *, kill: bool = False) -> Iterator[None]:
    """`proc` is down inside the block and answering again after it."""
    args = stop(layout, proc, kill=kill)
    try:
        yield
    finally:
        start(layout, proc, args)


TABLE = "agentry_chaos"


def _api_rules(info: ClusterInfo) -> str:
    """nft rules that drop a pod's packets to the API server, by Service and directly."""
    api_port = urlsplit(info.server).port
    return (
        f"table inet {TABLE} {{\n"
        "  chain output {\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    ip daddr {info.pod_server_host} tcp dport {info.pod_server_port} drop\n"
        f"    ip daddr {info.host_ip} tcp dport {api_port} drop\n"
        "  }\n"
        "}\n"
    )


def pod_netns(pid: int) -> str:
    """The named network namespace the process `pid` runs in (the pod's)."""
    out = subprocess.run(
        ["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=True
    )
    name = out.stdout.strip()
    if not name:
        raise ClusterError(f"process {pid} is in no named network namespace")
    return name


@contextmanager
def cut_off_from_api_server(layout: StateLayout, pid: int) -> Iterator[str]:
    """Inside the block, the pod of process `pid` loses every packet it sends to the API
    server (dropped, not refused: as a network partition looks); yields the namespace."""
    netns = pod_netns(pid)
    rules = _api_rules(_info(layout))
    subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"], input=rules, text=True, check=True
    )
    try:
        yield netns
    finally:
        subprocess.run(
            ["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", TABLE], check=False
        )

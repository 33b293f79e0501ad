"""Bringing one cluster up and down: etcd, kube-apiserver, kube-controller-manager, the
process node, kube-proxy and CoreDNS, on free ports, behind a node network of their own,
all state in one directory.

The argument builders are pure functions (unit-tested); `up` and `down` do the I/O in the
order the components need: node network and certificates, etcd, API server, controller
manager, wait for /readyz, then the node, kube-proxy and the cluster DNS, and wait until
DNS answers through its Service. A failed `up` stops whatever it had started.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentry_cluster import (
    clusterdns,
    database,
    kubeconfig,
    kubeproxy,
    network,
    pki,
    ports,
    processes,
)
from agentry_cluster.apiclient import ApiClient
from agentry_cluster.errors import (
    AlreadyRunning,
    CannotRunHere,
    ClusterError,
    NotRoot,
    StartFailed,
)
from agentry_cluster.layout import (
    NODE_NAME,
    PROCESS_ORDER,
    ClusterInfo,
    StateLayout,
    read_info,
    write_info,
)

SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_DOMAIN = "cluster.local"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "statefulset-controller",
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    # admin/edit/view are aggregated roles: empty until this controller fills them.
    "clusterrole-aggregation-controller",
    # Helm hooks and charts commonly use Jobs.
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "service-cidr-controller",
)

# Seconds each process gets between SIGTERM and SIGKILL; the node ends its pods first.
STOP_GRACE = {
    "node": 45.0,
    "kube-proxy": 10.0,
    "kube-controller-manager": 10.0,
    "kube-apiserver": 15.0,
    "etcd": 10.0,
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    kubelet: int

    @classmethod
    def choose(cls) -> Ports:
        return cls(*ports.free_ports(5))


def etcd_args(bin_dir: Path, layout: StateLayout, p: Ports) -> list[str]:
    client = f"http://127.0.0.1:{p.etcd_client}"
    peer = f"http://127.0.0.1:{p.etcd_peer}"
    return [
        str(bin_dir / "etcd"),
        "--name=agentry",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=agentry={peer}",
        "--initial-cluster-state=new",
        # A test cluster: losing the last writes on a power cut is acceptable, slow fsyncs are not.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(
    bin_dir: Path, layout: StateLayout, p: Ports, bridge: network.Bridge
) -> list[str]:
    def pk(name: str) -> str:
        return str(layout.pki_file(name))

    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
        "--bind-address=0.0.0.0",
        f"--secure-port={p.apiserver}",
        # The host's end of the node link: the `kubernetes` Service's endpoint, reached
        # from pods through kube-proxy's rules.
        f"--advertise-address={bridge.host_ip}",
        f"--tls-cert-file={pk('apiserver.crt')}",
        f"--tls-private-key-file={pk('apiserver.key')}",
        f"--client-ca-file={pk('ca.crt')}",
        "--authorization-mode=Node,RBAC",
        # On top of the default plugins: the one OpenShift and hardened clusters enable, so
        # an ownerReference with blockOwnerDeletion that RBAC does not cover fails here too.
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pk('sa.pub')}",
        f"--service-account-signing-key-file={pk('sa.key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        f"--kubelet-client-certificate={pk('apiserver-kubelet-client.crt')}",
        f"--kubelet-client-key={pk('apiserver-kubelet-client.key')}",
        f"--kubelet-certificate-authority={pk('ca.crt')}",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
    ]


def controller_manager_args(bin_dir: Path, layout: StateLayout, p: Ports, name: str) -> list[str]:
    # No delegated authentication: its port serves only /healthz (always allowed) to `up`.
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={layout.controller_manager_kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={p.controller_manager}",
        f"--cert-dir={layout.controller_manager_cert_dir}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={layout.pki_file('sa.key')}",
        f"--root-ca-file={layout.pki_file('ca.crt')}",
        f"--cluster-name={name}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--profiling=false",
    ]


def node_args(layout: StateLayout) -> list[str]:
    return [sys.executable, "-m", "agentry_cluster.node", "--cluster-dir", str(layout.root)]


def node_env() -> dict[str, str]:
    """The node's environment: our virtualenv's scripts first, since pods run them."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def running_processes(layout: StateLayout, info: ClusterInfo | None = None) -> dict[str, bool]:
    """For each recorded process: still running and still this cluster's?"""
    info = info or read_info(layout)
    if info is None:
        return {}
    return {name: processes.belongs_to(pid, layout.root) for name, pid in info.pids.items()}


def is_running(layout: StateLayout) -> bool:
    return any(running_processes(layout).values())


def check_can_start(layout: StateLayout) -> None:
    """Raise unless `up` can start a cluster in `layout.root` (root, nothing running)."""
    if os.geteuid() != 0:
        raise NotRoot
    if is_running(layout):
        raise AlreadyRunning(f"cluster in {layout.root} is already running (down first)")


def up(
    layout: StateLayout,
    name: str,
    bin_dir: Path,
    *,
    with_node: bool = True,
    progress: Progress = lambda _: None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> ClusterInfo:
    """Start a fresh cluster in `layout.root`; return its `cluster.json` content."""
    check_can_start(layout)
    if with_node and shutil.which("nft") is None:
        raise CannotRunHere(
            "kube-proxy needs nft: install the nftables package (hack/install-host-packages.sh)"
        )
    _prepare_fresh(layout)

    bridge = network.create_bridge(layout.root)
    progress(
        f"node network {bridge.netns}: bridge {bridge.name} {bridge.ip}/24, host {bridge.host_ip}"
    )
    try:
        return _start(layout, name, bin_dir, bridge, with_node, progress, now())
    except BaseException:
        progress("start failed: stopping what was started")
        down(layout, bridge_name=bridge.name)
        raise


def down(
    layout: StateLayout, *, progress: Progress = lambda _: None, bridge_name: str = ""
) -> list[str]:
    """Stop this cluster's processes (node first) and delete its node network (bridge,
    kube-proxy's rules, the host's veth and route); keep its files.

    Returns the names of the processes that were stopped.
    """
    info = read_info(layout)
    stopped = []
    if info is not None:
        for proc in PROCESS_ORDER:
            pid = info.pids.get(proc)
            if pid and processes.stop(pid, layout.root, grace=STOP_GRACE[proc]):
                progress(f"stopped {proc} (pid {pid})")
                stopped.append(proc)
        bridge_name = bridge_name or info.bridge
        database.stop(info, progress)
    if network.delete_bridge(bridge_name, layout.root):
        progress(f"deleted bridge {bridge_name} and its node network")
    return stopped


def _prepare_fresh(layout: StateLayout) -> None:
    """Clear the leftovers of an earlier run of this state directory (never anything else)."""
    root = layout.root
    if root.exists() and any(root.iterdir()):
        if not layout.cluster_json.exists() and not layout.pki.exists():
            raise ClusterError(f"{root} is not empty and is not a cluster's state directory")
        mounted = [m for m in _mount_points() if m == root or root in m.parents]
        if mounted:
            raise ClusterError(f"{mounted[0]} is still mounted; unmount it before `up`")
        down(layout)
        shutil.rmtree(root)
    for directory in (layout.pki, layout.logs, layout.etcd_data, layout.node_dir):
        directory.mkdir(parents=True, exist_ok=True)


def _start(
    layout: StateLayout,
    name: str,
    bin_dir: Path,
    bridge: network.Bridge,
    with_node: bool,
    progress: Progress,
    now: dt.datetime,
) -> ClusterInfo:
    p = Ports.choose()
    server = f"https://127.0.0.1:{p.apiserver}"
    pki.write_cluster_pki(layout.pki, NODE_NAME, bridge.host_ip, now)
    for path, stem in (
        (layout.admin_kubeconfig, "admin"),
        (layout.controller_manager_kubeconfig, "controller-manager"),
        (layout.node_kubeconfig, "node"),
        (layout.scheduler_kubeconfig, "scheduler"),
    ):
        kubeconfig.write_from_pki(path, cluster=name, server=server, pki_dir=layout.pki, stem=stem)
    # kube-proxy runs in the node namespace, where 127.0.0.1 is not the host's.
    kubeconfig.write_from_pki(
        layout.kube_proxy_kubeconfig,
        cluster=name,
        server=f"https://{bridge.host_ip}:{p.apiserver}",
        pki_dir=layout.pki,
        stem="kube-proxy",
    )
    progress("certificates and kubeconfigs")

    info = ClusterInfo(
        name=name,
        server=server,
        # Pods reach the API server as in any cluster: the `kubernetes` Service, port 443.
        pod_server_host=pki.SERVICE_IP,
        pod_server_port=443,
        bridge=bridge.name,
        bridge_ip=bridge.ip,
        pod_cidr=bridge.cidr,
        kubelet_port=p.kubelet,
        bin_dir=str(bin_dir),
        etcd_server=f"http://127.0.0.1:{p.etcd_client}",
        controller_manager_port=p.controller_manager,
        node_netns=bridge.netns,
        host_ip=bridge.host_ip,
        node_link_cidr=bridge.link_cidr,
        service_cidr=SERVICE_CIDR,
        dns_ip=clusterdns.dns_service_ip(SERVICE_CIDR),
        cluster_domain=CLUSTER_DOMAIN,
        kube_proxy_health=f"{bridge.node_ip}:{kubeproxy.HEALTH_PORT}",
    )

    def launch(proc: str, args: list[str], env: dict[str, str] | None = None) -> None:
        info.pids[proc] = processes.start(args, layout.log(proc), env)
        write_info(layout, info)

    write_info(layout, info)
    launch("etcd", etcd_args(bin_dir, layout, p))
    _wait(layout, info, "etcd", lambda: etcd_healthy(info.etcd_server), timeout=30)
    progress(f"etcd on {info.etcd_server}")

    launch("kube-apiserver", apiserver_args(bin_dir, layout, p, bridge))
    client = ApiClient(server, layout.pki)
    _wait(layout, info, "kube-apiserver", lambda: _ok(client, "/readyz"), timeout=90)
    progress(f"kube-apiserver ready on {server} (pods: {info.pod_server_host}:443)")
    # Only now: the controller manager exits if its RBAC roles are not bootstrapped yet.
    launch("kube-controller-manager", controller_manager_args(bin_dir, layout, p, name))
    _grant_scheduler_provisioning(client)
    _wait(
        layout,
        info,
        "kube-controller-manager",
        lambda: _controller_manager_healthy(p.controller_manager),
        timeout=60,
    )
    progress("kube-controller-manager healthy")

    if with_node:
        _start_node_and_services(layout, info, client, launch, progress)
    database.start(info, progress)
    write_info(layout, info)
    return info


def _start_node_and_services(
    layout: StateLayout,
    info: ClusterInfo,
    client: ApiClient,
    launch: Callable[..., None],
    progress: Progress,
) -> None:
    """The node, kube-proxy and CoreDNS start together; ready once DNS answers by Service."""
    bin_dir = Path(info.bin_dir)
    clusterdns.install(client, bin_dir, info.dns_ip, info.cluster_domain)
    launch("node", node_args(layout), node_env())
    kubeproxy.write_config(layout, info)
    launch("kube-proxy", kubeproxy.args(bin_dir, layout, info.node_netns))
    _wait(layout, info, "node", lambda: _node_ready(client), timeout=60)
    progress(f"process node {NODE_NAME} Ready (kubelet port {info.host_ip}:{info.kubelet_port})")
    _wait(layout, info, "kube-proxy", lambda: kubeproxy.healthy(info.kube_proxy_health), 60)
    progress(f"kube-proxy ({kubeproxy.MODE} mode) synced in {info.node_netns}")
    _wait(
        layout,
        info,
        "node",
        lambda: clusterdns.answers(info.node_netns, info.dns_ip, info.cluster_domain),
        timeout=60,
    )
    progress(f"cluster DNS answers on {info.dns_ip} ({info.cluster_domain})")


def _grant_scheduler_provisioning(client: ApiClient) -> None:
    """The node binds pods as `system:kube-scheduler` and provisions PVs: allow the latter."""
    client.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "agentry:kube-scheduler:pv-provisioner"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:persistent-volume-provisioner",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": "system:kube-scheduler",
                }
            ],
        },
    )


def _wait(
    layout: StateLayout,
    info: ClusterInfo,
    proc: str,
    ready: Callable[[], bool],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll `ready` until it holds; fail early, with the log's tail, if `proc` exits."""
    deadline = clock() + timeout
    while not ready():
        if not processes.is_running(info.pids[proc]):
            raise StartFailed(f"{proc} exited during start\n{_tail(layout.log(proc))}")
        if clock() > deadline:
            raise StartFailed(
                f"{proc} not ready after {timeout:.0f}s (log: {layout.log(proc)})\n"
                f"{_tail(layout.log(proc))}"
            )
        time.sleep(0.1)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def apiserver_ready(layout: StateLayout, info: ClusterInfo) -> bool:
    """Whether the cluster's API server answers /readyz with 200."""
    return _ok(ApiClient(info.server, layout.pki), "/readyz")


def _ok(client: ApiClient, path: str) -> bool:
    try:
        return client.get(path, timeout=2).status == 200
    except OSError:
        return False


def etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except OSError:
        return False


def _controller_manager_healthy(port: int) -> bool:
    # Its serving certificate is self-signed and it is on loopback: nothing to verify against.
    context = ssl._create_unverified_context()  # noqa: S323
    try:
        url = f"https://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, context=context, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _node_ready(client: ApiClient) -> bool:
    try:
        resp = client.get(f"/api/v1/nodes/{NODE_NAME}", timeout=2)
    except OSError:
        return False
    if resp.status != 200:
        return False
    conditions = resp.json().get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _mount_points() -> list[Path]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    return [Path(line.split()[1].replace("\\040", " ")) for line in lines if line.strip()]

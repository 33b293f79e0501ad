"""Where a cluster keeps its files, and its `cluster.json`.

The state directory is the contract between `agentry-cluster`, the process node and the
pytest plugin: certificates in `pki/`, kubeconfigs at the top, logs in `logs/`, etcd data
in `etcd/`, the node's own state in `node/`, and `cluster.json` naming the ports, the
bridge and the processes. Everything that locates a file goes through `StateLayout`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NODE_NAME = "agentry-node"
DEFAULT_NAME = "default"

# The order in which `down` stops processes: the node first (it ends its pods, CoreDNS among
# them), then kube-proxy, etcd last.
PROCESS_ORDER = ("node", "kube-proxy", "kube-controller-manager", "kube-apiserver", "etcd")


def default_state_root() -> Path:
    """`$XDG_STATE_HOME/agentry/clusters` (default `~/.local/state/agentry/clusters`)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentry" / "clusters"


def default_state_dir(name: str = DEFAULT_NAME) -> Path:
    return default_state_root() / name


@dataclass(frozen=True)
class StateLayout:
    """The paths inside one cluster's state directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd" / "data"

    @property
    def node_dir(self) -> Path:
        return self.root / "node"

    @property
    def cluster_json(self) -> Path:
        return self.root / "cluster.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.root / "controller-manager.kubeconfig"

    @property
    def node_kubeconfig(self) -> Path:
        return self.root / "node.kubeconfig"

    @property
    def scheduler_kubeconfig(self) -> Path:
        return self.root / "scheduler.kubeconfig"

    @property
    def kube_proxy_kubeconfig(self) -> Path:
        return self.root / "kube-proxy.kubeconfig"

    @property
    def kube_proxy_config(self) -> Path:
        """kube-proxy's KubeProxyConfiguration file."""
        return self.root / "kube-proxy.yaml"

    @property
    def controller_manager_cert_dir(self) -> Path:
        """Where kube-controller-manager keeps its self-signed serving certificate."""
        return self.root / "controller-manager"

    @property
    def helm_home(self) -> Path:
        """Helm's cache, config and data, so tests never touch the user's ~/.config/helm."""
        return self.root / "helm"

    def log(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def pki_file(self, name: str) -> Path:
        return self.pki / name


@dataclass
class ClusterInfo:
    """The content of `cluster.json` (field names are the shared contract)."""

    name: str
    server: str
    pod_server_host: str
    pod_server_port: int
    bridge: str
    bridge_ip: str
    pod_cidr: str
    kubelet_port: int
    bin_dir: str
    node_name: str = NODE_NAME
    pids: dict[str, int] = field(default_factory=dict)
    # Not read by the node: what `status` shows and `down` needs besides the pids.
    etcd_server: str = ""
    controller_manager_port: int = 0
    # Service networking: the node's network namespace (bridge and kube-proxy's rules), the
    # host's address as pods reach it (the node's InternalIP and the API server's advertised
    # address), the /30 joining the two, and the cluster DNS Service.
    node_netns: str = ""
    host_ip: str = ""
    node_link_cidr: str = ""
    service_cidr: str = ""
    dns_ip: str = ""
    cluster_domain: str = "cluster.local"
    kube_proxy_health: str = ""
    # The cluster's PostgreSQL (database.py); empty when the OS packages are missing.
    postgres_url: str = ""
    postgres_port: int = 0
    postgres_dir: str = ""
    postgres_password: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterInfo:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["pids"] = {str(k): int(v) for k, v in dict(known.get("pids", {})).items()}
        return cls(**known)


def write_info(layout: StateLayout, info: ClusterInfo) -> None:
    """Write `cluster.json` atomically: the node may read it at any moment."""
    tmp = layout.cluster_json.with_suffix(".json.tmp")
    tmp.write_text(info.to_json())
    tmp.replace(layout.cluster_json)


def read_info(layout: StateLayout) -> ClusterInfo | None:
    try:
        text = layout.cluster_json.read_text()
    except FileNotFoundError:
        return None
    return ClusterInfo.from_dict(json.loads(text))

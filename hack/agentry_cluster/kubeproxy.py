"""kube-proxy for one cluster: upstream's binary in nftables mode, run inside the cluster's
node network namespace, with a client certificate of its own.

nftables rather than iptables: this kernel and Debian's nft 1.0.6 support both (a probe
of each worked), and kube-proxy's nftables mode keeps every rule in one table it owns, so
nothing of it is spread over tables that other software on the host shares; it is the
mode upstream recommends on kernels of 5.13 and later. The namespace, not the host, holds
that table: its name is fixed, and a second cluster's proxy would replace the first's.

The identity is `system:kube-proxy`, the user the API server's bootstrap ClusterRoleBinding
`system:node-proxier` grants the ClusterRole of that name: the role kubeadm gives kube-proxy.
Its health port listens on the namespace's end of the host link, so `up` can wait for the
first full sync of the rules from the host.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import yaml

from agentry_cluster.layout import ClusterInfo, StateLayout

HEALTH_PORT = 10256
MODE = "nftables"


def config(layout: StateLayout, info: ClusterInfo) -> dict[str, Any]:
    """The KubeProxyConfiguration: the cluster's pod range, the node's name, no conntrack
    limit changes (the table size is the host's, shared by every namespace)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": MODE,
        "clientConnection": {"kubeconfig": str(layout.kube_proxy_kubeconfig)},
        "hostnameOverride": info.node_name,
        "clusterCIDR": info.pod_cidr,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": info.kube_proxy_health,
        # Only the namespace's loopback: nothing outside the namespace scrapes it.
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0},
    }


def write_config(layout: StateLayout, info: ClusterInfo) -> None:
    layout.kube_proxy_config.write_text(yaml.safe_dump(config(layout, info), sort_keys=False))


def args(bin_dir: Path, layout: StateLayout, netns: str) -> list[str]:
    """kube-proxy inside `netns` (`ip netns exec` execs it: the pid stays the proxy's)."""
    return [
        "ip",
        "netns",
        "exec",
        netns,
        str(bin_dir / "kube-proxy"),
        f"--config={layout.kube_proxy_config}",
    ]


def healthy(health_address: str) -> bool:
    """kube-proxy's /healthz answers 200 once it has written the rules."""
    try:
        url = f"http://{health_address}/healthz"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False

"""The chaos suite's faults, without a cluster: which processes may be stopped, and the nft
rules that cut a pod off from the API server (both of its addresses, nothing else)."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentry_cluster import faults
from agentry_cluster.errors import ClusterError
from agentry_cluster.layout import ClusterInfo, StateLayout, write_info


def info() -> ClusterInfo:
    return ClusterInfo(
        name="dev", server="https://127.0.0.1:40000", pod_server_host="10.96.0.1",
        pod_server_port=443, bridge="agbr0", bridge_ip="10.244.0.1",
        pod_cidr="10.244.0.0/24", kubelet_port=40001, bin_dir="/bin", host_ip="10.250.0.1",
        pids={"etcd": 2**22 + 1, "kube-apiserver": 2**22 + 2},
    )  # fmt: skip


def test_only_etcd_and_the_api_server_can_be_stopped(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'node': only etcd, kube-apiserver"):
        faults.stop(StateLayout(tmp_path), "node")


def test_a_process_that_is_not_running_is_not_stopped(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    write_info(layout, info())
    with pytest.raises(ClusterError, match=r"etcd \(pid 4194305\) is not running"):
        faults.stop(layout, "etcd")


def test_the_cut_drops_the_api_server_by_service_and_by_host_port_only() -> None:
    rules = faults._api_rules(info())
    drops = [line.strip() for line in rules.splitlines() if line.strip().endswith("drop")]
    assert drops == [
        "ip daddr 10.96.0.1 tcp dport 443 drop",
        "ip daddr 10.250.0.1 tcp dport 40000 drop",
    ]
    assert "policy accept" in rules

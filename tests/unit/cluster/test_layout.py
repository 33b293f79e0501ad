"""cluster.json: the fields the process node reads, written atomically, read back whole."""

from __future__ import annotations

import json
from pathlib import Path

from agentry_cluster.layout import ClusterInfo, StateLayout, read_info, write_info

CONTRACT_KEYS = {
    "name", "node_name", "server", "pod_server_host", "pod_server_port", "bridge",
    "bridge_ip", "pod_cidr", "kubelet_port", "bin_dir", "pids",
}  # fmt: skip


def sample() -> ClusterInfo:
    return ClusterInfo(
        name="dev", server="https://127.0.0.1:40000", pod_server_host="10.244.0.1",
        pod_server_port=40000, bridge="agbr0", bridge_ip="10.244.0.1",
        pod_cidr="10.244.0.0/24", kubelet_port=40001, bin_dir="/bin",
        pids={"etcd": 10, "kube-apiserver": 11},
    )  # fmt: skip


def test_cluster_json_has_every_field_of_the_shared_contract(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    write_info(layout, sample())
    data = json.loads(layout.cluster_json.read_text())
    assert set(data) >= CONTRACT_KEYS
    assert data["node_name"] == "agentry-node"
    assert data["pids"] == {"etcd": 10, "kube-apiserver": 11}


def test_cluster_json_reads_back_as_written_and_ignores_unknown_fields(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    write_info(layout, sample())
    data = json.loads(layout.cluster_json.read_text())
    data["added_by_a_newer_version"] = True
    layout.cluster_json.write_text(json.dumps(data))
    assert read_info(layout) == sample()


def test_a_directory_without_cluster_json_has_no_cluster(tmp_path: Path) -> None:
    assert read_info(StateLayout(tmp_path)) is None


def test_the_layout_puts_files_where_the_node_expects_them(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    assert layout.pki_file("kubelet-serving.crt") == tmp_path / "pki" / "kubelet-serving.crt"
    assert layout.node_kubeconfig == tmp_path / "node.kubeconfig"
    assert layout.scheduler_kubeconfig == tmp_path / "scheduler.kubeconfig"
    assert layout.log("node") == tmp_path / "logs" / "node.log"
    assert layout.node_dir == tmp_path / "node"

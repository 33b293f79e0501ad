"""The command lines of etcd, kube-apiserver, kube-controller-manager and the node."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from agentry_cluster import controlplane
from agentry_cluster.layout import StateLayout
from agentry_cluster.network import Bridge

BIN = Path("/opt/bin")
PORTS = controlplane.Ports(
    etcd_client=20001, etcd_peer=20002, apiserver=20003, controller_manager=20004, kubelet=20005
)


@pytest.fixture
def layout(tmp_path: Path) -> StateLayout:
    return StateLayout(tmp_path / "clusters" / "dev")


def flags(args: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) if "=" in a else (a[2:], "") for a in args[1:] if a[:2] == "--")


def all_command_lines(layout: StateLayout) -> dict[str, list[str]]:
    return {
        "etcd": controlplane.etcd_args(BIN, layout, PORTS),
        "kube-apiserver": controlplane.apiserver_args(BIN, layout, PORTS, Bridge(2)),
        "kube-controller-manager": controlplane.controller_manager_args(BIN, layout, PORTS, "dev"),
        "node": controlplane.node_args(layout),
    }


def test_every_process_names_its_state_directory_so_down_can_recognise_it(
    layout: StateLayout,
) -> None:
    for name, args in all_command_lines(layout).items():
        assert any(str(layout.root) in a for a in args), name


def test_etcd_serves_on_its_own_loopback_ports_without_fsync(layout: StateLayout) -> None:
    f = flags(controlplane.etcd_args(BIN, layout, PORTS))
    assert f["listen-client-urls"] == "http://127.0.0.1:20001"
    assert f["listen-peer-urls"] == "http://127.0.0.1:20002"
    assert f["data-dir"] == str(layout.etcd_data)
    assert "unsafe-no-fsync" in f


def test_api_server_advertises_the_hosts_end_of_the_node_link_and_authorizes_with_node_and_rbac(
    layout: StateLayout,
) -> None:
    f = flags(controlplane.apiserver_args(BIN, layout, PORTS, Bridge(2)))
    assert f["bind-address"] == "0.0.0.0"
    assert f["secure-port"] == "20003"
    # The `kubernetes` Service's endpoint: pods reach it through kube-proxy's rules.
    assert f["advertise-address"] == "10.244.2.253"
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["etcd-servers"] == "http://127.0.0.1:20001"
    assert f["service-cluster-ip-range"] == "10.96.0.0/12"
    assert f["kubelet-preferred-address-types"] == "InternalIP"
    assert f["kubelet-client-certificate"].endswith("pki/apiserver-kubelet-client.crt")
    assert f["service-account-signing-key-file"].endswith("pki/sa.key")
    assert f["service-account-key-file"].endswith("pki/sa.pub")
    assert f["service-account-issuer"].startswith("https://")


def test_controller_manager_runs_the_controllers_tests_rely_on(layout: StateLayout) -> None:
    f = flags(controlplane.controller_manager_args(BIN, layout, PORTS, "dev"))
    controllers = set(f["controllers"].split(","))
    required = {
        "garbage-collector-controller", "namespace-controller", "statefulset-controller",
        "deployment-controller", "replicaset-controller", "serviceaccount-controller",
        "serviceaccount-token-controller", "disruption-controller", "endpoints-controller",
        "endpointslice-controller", "persistentvolume-binder-controller",
        "persistentvolume-protection-controller", "persistentvolumeclaim-protection-controller",
        "root-ca-certificate-publisher-controller", "pod-garbage-collector-controller",
    }  # fmt: skip
    assert required <= controllers
    assert f["leader-elect"] == "false"
    assert f["use-service-account-credentials"] == "true"
    assert f["service-account-private-key-file"].endswith("pki/sa.key")
    assert f["root-ca-file"].endswith("pki/ca.crt")
    assert f["secure-port"] == "20004"


def test_the_node_runs_with_this_python_and_its_scripts_on_path(layout: StateLayout) -> None:
    args = controlplane.node_args(layout)
    assert args == [sys.executable, "-m", "agentry_cluster.node", "--cluster-dir", str(layout.root)]
    assert controlplane.node_env()["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_the_ports_of_one_cluster_are_all_different() -> None:
    chosen = controlplane.Ports.choose()
    assert len({*vars(chosen).values()}) == 5


def test_api_server_enforces_owner_reference_permissions_like_openshift(
    layout: StateLayout,
) -> None:
    """Every e2e test then catches a child whose blockOwnerDeletion RBAC does not cover."""
    f = flags(controlplane.apiserver_args(BIN, layout, PORTS, Bridge(2)))
    assert "OwnerReferencesPermissionEnforcement" in f["enable-admission-plugins"].split(",")

"""What the node writes to the API besides pod status: the Node (address, kubelet port),
its Lease, bindings, and PersistentVolumes for claims; and pod IP allocation."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentry_cluster.node.errors import NodeError
from agentry_cluster.node.network import IpPool, pod_network
from agentry_cluster.node.registration import build_lease, build_node
from agentry_cluster.node.scheduling import build_binding, build_volume, wants_binding


def test_the_node_advertises_the_bridge_address_and_kubelet_port() -> None:
    node = build_node("agentry-node", "10.244.3.1", 10250, "2026-01-01T00:00:00Z")
    status = node["status"]
    assert {"type": "InternalIP", "address": "10.244.3.1"} in status["addresses"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert int(status["capacity"]["pods"]) > 0


def test_the_lease_is_owned_by_the_node_and_held_by_it() -> None:
    node = {"metadata": {"name": "agentry-node", "uid": "n1"}}
    lease = build_lease(node, "2026-01-01T00:00:00.000000Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "n1"
    assert lease["spec"]["holderIdentity"] == "agentry-node"


def test_only_unscheduled_pods_for_the_default_scheduler_are_bound() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {}}
    assert wants_binding(pod)
    assert not wants_binding({"metadata": {}, "spec": {"nodeName": "x"}})
    assert not wants_binding({"metadata": {}, "spec": {"schedulerName": "other"}})
    assert not wants_binding({"metadata": {"deletionTimestamp": "t"}, "spec": {}})


def test_a_binding_targets_this_node() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u"}}
    assert build_binding(pod, "agentry-node")["target"] == {
        "apiVersion": "v1", "kind": "Node", "name": "agentry-node"}  # fmt: skip


def test_a_claim_gets_a_host_directory_volume_bound_to_it_by_claim_ref() -> None:
    pvc = {"metadata": {"name": "state-agent-0", "namespace": "team", "uid": "c1"},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                    "resources": {"requests": {"storage": "2Gi"}}}}  # fmt: skip
    pv = build_volume(pvc, Path("/state/pvs"))
    assert pv["metadata"]["name"] == "pvc-c1"
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    assert pv["spec"]["storageClassName"] == "standard"
    assert pv["spec"]["hostPath"]["path"] == "/state/pvs/pvc-c1"
    assert pv["spec"]["claimRef"]["uid"] == "c1"


def test_pod_ips_skip_the_gateway_and_are_not_reused_at_once() -> None:
    pool = IpPool("10.244.0.0/29", "10.244.0.1")
    first = pool.allocate("a")
    assert first == "10.244.0.2"
    assert pool.allocate("a") == first
    pool.release("a")
    assert pool.allocate("b") == "10.244.0.3"


def test_the_node_link_addresses_are_never_given_to_a_pod() -> None:
    pool = IpPool("10.244.3.0/24", "10.244.3.1", reserved="10.244.3.252/30")
    given = {pool.allocate(str(n)) for n in range(250)}
    assert "10.244.3.253" not in given
    assert "10.244.3.254" not in given
    with pytest.raises(NodeError, match="no free address"):
        pool.allocate("one too many")


def test_a_full_pod_cidr_is_a_clear_error() -> None:
    pool = IpPool("10.244.0.0/30", "10.244.0.1")
    pool.allocate("a")
    with pytest.raises(NodeError, match="no free address"):
        pool.allocate("b")


def test_interface_names_fit_the_kernel_limit() -> None:
    net = pod_network("agbr12", "0f7c1e9a-1111-2222-3333-444455556666", "ip", 24, "gw", "agnode12")
    assert len(net.host_veth) <= 15
    assert len(net.peer_veth) <= 15
    assert net.netns.startswith("agbr12-")

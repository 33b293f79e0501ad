"""kube-proxy's configuration, the CoreDNS addon's objects and the DNS probe's wire format."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from agentry_cluster import clusterdns, dnsquery, kubeproxy, pki
from agentry_cluster.layout import ClusterInfo, StateLayout


@pytest.fixture
def layout(tmp_path: Path) -> StateLayout:
    return StateLayout(tmp_path / "dev")


def info() -> ClusterInfo:
    return ClusterInfo(
        name="dev",
        server="https://127.0.0.1:40000",
        pod_server_host="10.96.0.1",
        pod_server_port=443,
        bridge="agbr2",
        bridge_ip="10.244.2.1",
        pod_cidr="10.244.2.0/24",
        kubelet_port=40001,
        bin_dir="/opt/bin",
        node_netns="agnode2",
        kube_proxy_health="10.244.2.254:10256",
    )


def test_kube_proxy_runs_in_nftables_mode_for_this_clusters_pods_and_node(
    layout: StateLayout,
) -> None:
    config = kubeproxy.config(layout, info())
    assert config["mode"] == "nftables"
    assert config["clusterCIDR"] == "10.244.2.0/24"
    assert config["hostnameOverride"] == "agentry-node"
    assert config["healthzBindAddress"] == "10.244.2.254:10256"
    assert config["clientConnection"]["kubeconfig"] == str(layout.kube_proxy_kubeconfig)
    # The conntrack table size is the host's: kube-proxy must leave it alone.
    assert config["conntrack"] == {"maxPerCore": 0, "min": 0}


def test_kube_proxy_is_started_inside_the_node_namespace_naming_the_state_directory(
    layout: StateLayout,
) -> None:
    args = kubeproxy.args(Path("/opt/bin"), layout, "agnode2")
    assert args[:4] == ["ip", "netns", "exec", "agnode2"]
    assert args[4] == "/opt/bin/kube-proxy"
    assert any(str(layout.root) in a for a in args)


def test_kube_proxy_has_the_identity_the_node_proxier_binding_names() -> None:
    identities = {i.stem: i for i in pki.cluster_identities("agentry-node", "10.244.2.253")}
    proxy = identities["kube-proxy"]
    assert proxy.common_name == "system:kube-proxy"
    assert proxy.client
    assert not proxy.server
    assert "10.244.2.253" in identities["apiserver"].ip_addresses


def test_the_dns_service_is_the_tenth_address_of_the_service_range() -> None:
    assert clusterdns.dns_service_ip("10.96.0.0/12") == "10.96.0.10"


def test_the_coredns_addon_serves_the_cluster_domain_and_forwards_nothing() -> None:
    objects = dict(
        (body["kind"], body)
        for _, body in clusterdns.objects(Path("/opt/bin"), "10.96.0.10", "cluster.local")
    )
    corefile = objects["ConfigMap"]["data"]["Corefile"]
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa" in corefile
    assert "forward" not in corefile
    service = objects["Service"]
    assert service["metadata"]["name"] == "kube-dns"
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }
    pod_spec = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod_spec["dnsPolicy"] == "Default"
    assert pod_spec["containers"][0]["command"][0] == "/opt/bin/coredns"
    rules = objects["ClusterRole"]["rules"]
    assert any("endpointslices" in r["resources"] for r in rules)
    assert all(set(r["verbs"]) == {"list", "watch"} for r in rules)


def test_a_dns_query_encodes_the_name_as_labels() -> None:
    packet = dnsquery.build_query("kubernetes.default.svc.cluster.local", 0x1234)
    assert packet[:2] == b"\x12\x34"
    assert b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00" in packet


def answer(ident: int, rcode: int, addresses: list[str]) -> bytes:
    question = dnsquery.build_query("web.shop.svc.cluster.local", ident)[12:]
    header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(addresses), 0, 0)
    records = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes(int(x) for x in a.split("."))
        for a in addresses
    )
    return header + question + records


def test_an_answer_gives_its_addresses_through_compressed_names() -> None:
    data = answer(7, 0, ["10.96.12.4", "10.96.12.5"])
    assert dnsquery.parse_answer(data, 7) == (0, ["10.96.12.4", "10.96.12.5"])


def test_a_name_error_has_no_addresses() -> None:
    assert dnsquery.parse_answer(answer(7, 3, []), 7) == (3, [])


def test_an_answer_to_another_query_is_refused() -> None:
    with pytest.raises(ValueError, match="another query"):
        dnsquery.parse_answer(answer(8, 0, ["10.96.0.1"]), 7)

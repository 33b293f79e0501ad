"""Bridge choice: the first index whose name and /24 are unused, so clusters coexist."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from agentry_cluster import network


def nets(*cidrs: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(c) for c in cidrs]


def test_the_first_cluster_gets_bridge_zero() -> None:
    assert network.choose_index({"lo", "eth0"}, nets("192.168.1.0/24")) == 0


def test_an_existing_bridge_name_is_skipped() -> None:
    assert network.choose_index({"agbr0", "agbr1"}, []) == 2


def test_a_subnet_already_routed_on_the_host_is_skipped() -> None:
    assert network.choose_index(set(), nets("10.244.0.0/24", "10.244.1.128/25")) == 2


def test_a_host_network_covering_the_whole_range_leaves_no_index() -> None:
    with pytest.raises(RuntimeError, match=r"no free bridge index"):
        network.choose_index(set(), nets("10.0.0.0/8"))


def test_bridge_addresses_follow_the_index() -> None:
    bridge = network.Bridge(7)
    assert (bridge.name, bridge.ip, bridge.cidr) == ("agbr7", "10.244.7.1", "10.244.7.0/24")
    assert (bridge.netns, bridge.host_veth) == ("agnode7", "agh7")
    assert (bridge.host_ip, bridge.node_ip) == ("10.244.7.253", "10.244.7.254")
    assert bridge.link_cidr == "10.244.7.252/30"


def test_a_namespace_or_host_link_left_by_another_cluster_is_skipped() -> None:
    assert network.choose_index({"agnode0", "agh1"}, []) == 2


def test_the_node_namespace_gets_its_link_end_the_bridge_and_a_route_to_the_host() -> None:
    lines = network.node_setup_batch(network.Bridge(3)).splitlines()
    assert "addr add 10.244.3.254/30 dev eth0" in lines
    # A fixed MAC: a bridge without one takes its lowest port's, which leaves with that pod.
    assert "link add agbr3 address 02:00:0a:f4:03:01 type bridge" in lines
    assert "addr add 10.244.3.1/24 dev agbr3" in lines
    assert lines[-1] == "route add default via 10.244.3.253"


def test_a_bridge_name_that_is_not_a_clusters_is_never_owned(tmp_path: Path) -> None:
    assert not network.bridge_owned_by("eth0", tmp_path)
    assert not network.bridge_owned_by("agbrx", tmp_path)


def test_used_networks_come_from_addresses_and_routes_but_not_the_default_route() -> None:
    addresses: list[dict[str, object]] = [
        {
            "ifname": "eth0",
            "addr_info": [{"family": "inet", "local": "10.244.5.7", "prefixlen": 24}],
        },
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    ]
    routes: list[dict[str, object]] = [{"dst": "default"}, {"dst": "10.244.6.0/24"}]
    used = network.used_networks_from(addresses, routes)
    assert nets("10.244.5.0/24", "127.0.0.0/8", "10.244.6.0/24") == used


def test_the_owner_alias_fits_the_kernel_limit() -> None:
    alias = network.owner_alias(Path("/x" * 300))
    assert alias.startswith("agentry-cluster /x")
    assert len(alias) <= 255


def test_the_node_namespace_routes_and_answers_arp_for_the_host_on_its_bridge() -> None:
    settings = network.node_sysctls(network.Bridge(3))
    assert "net.ipv4.ip_forward=1" in settings
    assert "net.ipv4.conf.agbr3.proxy_arp=1" in settings

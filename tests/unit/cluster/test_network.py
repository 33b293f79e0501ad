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

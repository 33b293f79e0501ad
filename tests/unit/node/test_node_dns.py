"""A pod's resolv.conf and hosts file, against what the kubelet writes for each dnsPolicy."""

from __future__ import annotations

from typing import Any

from agentry_cluster.node.dns import (
    ClusterDns,
    ResolvConf,
    hosts_file,
    parse_resolv_conf,
    pod_resolv_conf,
)

HOST = ResolvConf(("10.255.255.53",), ("corp.example",), ("edns0",))
CLUSTER = ClusterDns("10.96.0.10", "cluster.local", HOST)


def pod(namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": namespace}, "spec": spec}


def test_cluster_first_is_the_default_and_searches_the_pods_namespace_first() -> None:
    text = pod_resolv_conf(pod(), CLUSTER).render()
    assert text == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_default_policy_copies_the_nodes_resolv_conf() -> None:
    assert pod_resolv_conf(pod(dnsPolicy="Default"), CLUSTER) == HOST


def test_none_policy_uses_only_the_pods_dns_config() -> None:
    config = {
        "nameservers": ["192.0.2.1"],
        "searches": ["a.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}],
    }
    conf = pod_resolv_conf(pod(dnsPolicy="None", dnsConfig=config), CLUSTER)
    assert conf == ResolvConf(("192.0.2.1",), ("a.example",), ("ndots:2", "rotate"))


def test_dns_config_is_merged_into_cluster_first_options_overriding_by_name() -> None:
    config = {
        "nameservers": ["10.96.0.10", "192.0.2.1"],
        "searches": ["svc.cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}],
    }
    conf = pod_resolv_conf(pod(dnsConfig=config), CLUSTER)
    assert conf.nameservers == ("10.96.0.10", "192.0.2.1")
    assert conf.searches[-1] == "extra.example"
    assert conf.searches.count("svc.cluster.local") == 1
    assert conf.options == ("ndots:1", "edns0")


def test_without_a_cluster_dns_server_cluster_first_falls_back_to_the_node() -> None:
    assert pod_resolv_conf(pod(), ClusterDns("", "cluster.local", HOST)) == HOST


def test_the_kubelets_limit_of_three_nameservers_holds() -> None:
    config = {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]}
    assert len(pod_resolv_conf(pod(dnsConfig=config), CLUSTER).nameservers) == 3


def test_resolv_conf_parsing_keeps_the_last_search_line_and_skips_comments() -> None:
    text = (
        "# generated\nsearch old.example\nnameserver 10.0.0.2 ; main\n"
        "search a.example. b\noptions ndots:2 edns0\n"
    )
    assert parse_resolv_conf(text) == ResolvConf(
        ("10.0.0.2",), ("a.example", "b"), ("ndots:2", "edns0")
    )


def test_hosts_file_names_a_pod_with_a_subdomain_by_its_service_name_first() -> None:
    text = hosts_file(pod(hostname="web-0", subdomain="web"), "10.244.0.7", "cluster.local")
    assert "10.244.0.7\tweb-0.web.shop.svc.cluster.local web-0\n" in text
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")


def test_hosts_file_adds_host_aliases() -> None:
    aliases = [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}]
    text = hosts_file(pod(hostAliases=aliases), "10.244.0.7", "cluster.local")
    assert text.endswith("10.244.0.7\tweb-0\n10.1.2.3\tdb db.local\n")

"""The cluster's node network: a network namespace `agnode<n>`, as a kind node container
has one, holding the bridge `agbr<n>` (10.244.<n>.1/24) that pods hang off, kube-proxy's
rules and nothing else; and a veth pair joining it to the host.

The host end `agh<n>` has 10.244.<n>.253/30 and the namespace end 10.244.<n>.254; the host
routes the cluster's /24 through it. Processes on the host (the API server, the process
node's kubelet port, a test's fake model provider) are reached from pods at the host end's
address; the API server advertises it, so pods reach it through the `kubernetes` Service.

Why a namespace and not the host's own tables: kube-proxy owns a table whose name is fixed
(`kube-proxy`), so two clusters' proxies on one host would overwrite each other's rules.
In its own namespace each cluster has its own table, its own forwarding switch and its own
bridge netfilter setting, and `down` removes every rule by deleting the namespace; the host
keeps only the veth end and its route, which go with it. `n` is the first index whose
names and /24 are all unused on this host. The host end carries an alias naming the
cluster's state directory, and `delete_node_network` removes only a network marked ours.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "agbr"
MAX_INDEX = 254
LOCK_FILE = Path("/run/agentry-cluster-network.lock")
# The last /30 of each cluster's /24 joins the node namespace to the host.
LINK_OFFSET = 252


@dataclass(frozen=True)
class Bridge:
    """The names and addresses of cluster `index`'s node network (pure)."""

    index: int

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def ip(self) -> str:
        """The bridge's address: the pods' default gateway, inside the node namespace."""
        return f"10.244.{self.index}.1"

    @property
    def mac(self) -> str:
        """The bridge's fixed, locally administered MAC (02:…), derived from its index."""
        return f"02:00:0a:f4:{self.index:02x}:01"

    @property
    def cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def netns(self) -> str:
        return f"agnode{self.index}"

    @property
    def host_veth(self) -> str:
        return f"agh{self.index}"

    @property
    def host_ip(self) -> str:
        """The host's end of the link: what pods reach the host's processes at."""
        return f"10.244.{self.index}.{LINK_OFFSET + 1}"

    @property
    def node_ip(self) -> str:
        """The namespace's end of the link (kube-proxy's health and metrics ports)."""
        return f"10.244.{self.index}.{LINK_OFFSET + 2}"

    @property
    def link_cidr(self) -> str:
        return f"10.244.{self.index}.{LINK_OFFSET}/30"


def owner_alias(state_dir: Path) -> str:
    """The link alias that marks a bridge as this cluster's (the kernel keeps 255 bytes)."""
    return f"agentry-cluster {state_dir}"[:255]


def choose_index(
    link_names: set[str], used_networks: list[ipaddress.IPv4Network], max_index: int = MAX_INDEX
) -> int:
    """The first index whose names (links, namespaces) are free and whose /24 overlaps nothing
    in use."""
    for index in range(max_index + 1):
        bridge = Bridge(index)
        if {bridge.name, bridge.host_veth, bridge.netns} & link_names:
            continue
        net = ipaddress.IPv4Network(bridge.cidr)
        if any(net.overlaps(used) for used in used_networks):
            continue
        return index
    raise RuntimeError(f"no free bridge index in 0..{max_index} (10.244.0.0/16 is all in use)")


def used_networks_from(
    addresses: list[dict[str, object]], routes: list[dict[str, object]]
) -> list[ipaddress.IPv4Network]:
    """IPv4 networks taken on this host, from `ip -j -4 addr` and `ip -j -4 route` output."""
    used: list[ipaddress.IPv4Network] = []
    for link in addresses:
        for info in link.get("addr_info", []) or []:  # type: ignore[attr-defined]
            if info.get("family") == "inet":
                used.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in routes:
        dst = str(route.get("dst", ""))
        if dst and dst != "default":
            used.append(ipaddress.IPv4Network(dst, strict=False))
    # A default route overlaps everything; it says nothing about which /24 is free.
    return [n for n in used if n.prefixlen > 0]


def create_bridge(state_dir: Path) -> Bridge:
    """Create the first free node network, marked as `state_dir`'s, and return its names."""
    with _host_lock():
        links = {str(link["ifname"]) for link in _ip_json("link", "show")}
        links |= set(_ip("netns", "list").split())
        used = used_networks_from(_ip_json("-4", "addr", "show"), _ip_json("-4", "route", "show"))
        bridge = Bridge(choose_index(links, used))
        _ip("netns", "add", bridge.netns)
        try:
            _wire(bridge, state_dir)
        except BaseException:
            _ip("link", "del", bridge.host_veth, check=False)
            _ip("netns", "del", bridge.netns, check=False)
            raise
    return bridge


def node_setup_batch(bridge: Bridge) -> str:
    """`ip -batch` lines run inside the node namespace: link end, bridge, default route."""
    link_prefix = bridge.link_cidr.split("/")[1]
    return "\n".join(
        [
            "link set lo up",
            f"addr add {bridge.node_ip}/{link_prefix} dev eth0",
            "link set eth0 up",
            # A bridge without an address of its own takes its lowest port's MAC, which
            # changes as pods come and go: pods then send to a gateway MAC that no port has
            # any more, and host <-> pod traffic stalls until their ARP entries expire.
            f"link add {bridge.name} address {bridge.mac} type bridge",
            f"addr add {bridge.ip}/24 dev {bridge.name}",
            f"link set {bridge.name} up",
            f"route add default via {bridge.host_ip}",
        ]
    )


def node_sysctls(bridge: Bridge) -> list[str]:
    """Settings of the node namespace only: it routes between the bridge and the host link;
    bridged pod-to-pod replies pass netfilter, so a Service's DNAT is undone on the way
    back; and the bridge answers ARP for the host's end of the link, which lies inside the
    pods' /24 but behind the namespace (proxy ARP answers only for addresses routed out of
    another interface, never for a pod's)."""
    return [
        "net.ipv4.ip_forward=1",
        "net.bridge.bridge-nf-call-iptables=1",
        f"net.ipv4.conf.{bridge.name}.proxy_arp=1",
    ]


def _wire(bridge: Bridge, state_dir: Path) -> None:
    link_prefix = bridge.link_cidr.split("/")[1]
    _ip(
        "link",
        "add",
        bridge.host_veth,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        bridge.netns,
    )
    _ip("link", "set", bridge.host_veth, "alias", owner_alias(state_dir))
    _ip("addr", "add", f"{bridge.host_ip}/{link_prefix}", "dev", bridge.host_veth)
    _ip("link", "set", bridge.host_veth, "up")
    _run(["ip", "-n", bridge.netns, "-batch", "-"], node_setup_batch(bridge) + "\n")
    _run(["ip", "netns", "exec", bridge.netns, "sysctl", "-q", "-w", *node_sysctls(bridge)])
    _ip("route", "add", bridge.cidr, "via", bridge.node_ip, "dev", bridge.host_veth)


def bridge_owned_by(name: str, state_dir: Path) -> bool:
    """Whether cluster bridge `name`'s network exists and carries `state_dir`'s mark."""
    if not name.startswith(PREFIX) or not name[len(PREFIX) :].isdigit():
        return False
    bridge = Bridge(int(name[len(PREFIX) :]))
    links = _ip_json("link", "show", "dev", bridge.host_veth, check=False)
    return bool(links) and links[0].get("ifalias") == owner_alias(state_dir)


def delete_bridge(name: str, state_dir: Path) -> bool:
    """Delete bridge `name`'s node network (namespace, veth, route, every rule in it) if it
    exists and is this cluster's; say whether it was deleted."""
    if not name or not bridge_owned_by(name, state_dir):
        return False
    bridge = Bridge(int(name[len(PREFIX) :]))
    _ip("link", "del", bridge.host_veth, check=False)
    _ip("netns", "del", bridge.netns, check=False)
    return True


@contextmanager
def _host_lock() -> Iterator[None]:
    """Serialise bridge choice between clusters starting at the same moment."""
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], stdin: str | None = None, *, check: bool = True) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def _ip(*args: str, check: bool = True) -> str:
    return _run(["ip", *args], check=check)


def _ip_json(*args: str, check: bool = True) -> list[dict[str, object]]:
    out = _ip("-j", *args, check=check)
    data = json.loads(out) if out.strip() else []
    return list(data)

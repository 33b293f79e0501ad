"""A network namespace per pod: a veth pair with one end on the cluster's bridge (inside
the cluster's node namespace), a pod IP from the pod CIDR, a default route via the bridge
address, and /etc/netns files (resolv.conf and hosts, as the kubelet writes them) that
`ip netns exec` mounts over /etc inside the pod.

`IpPool` and the naming are pure; the rest runs `ip` as asyncio subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from agentry_cluster.node.errors import NodeError

NETNS_ETC = Path("/etc/netns")


class IpPool:
    """Pod IPs from a CIDR, skipping the network, gateway and broadcast addresses and the
    `reserved` range (the node link), handed out round-robin so a deleted pod's address is
    not reused at once."""

    def __init__(self, cidr: str, gateway: str, reserved: str = "") -> None:
        net = ipaddress.ip_network(cidr, strict=False)
        gw = ipaddress.ip_address(gateway)
        taken = ipaddress.ip_network(reserved) if reserved else None
        self._free = [
            str(h) for h in net.hosts() if h != gw and not (taken is not None and h in taken)
        ]
        self._used: dict[str, str] = {}
        self._next = 0
        self.prefix = net.prefixlen

    def allocate(self, owner: str) -> str:
        if owner in self._used:
            return self._used[owner]
        taken = set(self._used.values())
        for step in range(len(self._free)):
            candidate = self._free[(self._next + step) % len(self._free)]
            if candidate not in taken:
                self._next = (self._next + step + 1) % len(self._free)
                self._used[owner] = candidate
                return candidate
        raise NodeError("the pod CIDR has no free address left")

    def release(self, owner: str) -> None:
        self._used.pop(owner, None)


@dataclass(frozen=True)
class PodNetwork:
    """The names and address of one pod's namespace."""

    netns: str
    host_veth: str
    peer_veth: str
    ip: str
    prefix: int
    gateway: str
    bridge: str
    # The namespace holding the bridge and the pod's outer veth end.
    node_netns: str = ""


def pod_network(
    bridge: str, uid: str, ip: str, prefix: int, gateway: str, node_netns: str
) -> PodNetwork:
    """Names short enough for Linux (interfaces: 15 characters), unique per bridge and pod."""
    digest = hashlib.sha1(f"{bridge}/{uid}".encode(), usedforsecurity=False).hexdigest()[:10]
    return PodNetwork(
        f"{bridge}-{digest}", f"av{digest}", f"ap{digest}", ip, prefix, gateway, bridge, node_netns
    )


async def _ip(*args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise NodeError(f"ip {' '.join(args)} failed: {err.decode().strip()}")
    return out.decode()


async def check_node_network(node_netns: str, bridge: str) -> None:
    """`agentry-cluster up` makes the node namespace and its bridge; the node needs both."""
    if not await _ip("-n", node_netns, "link", "show", bridge, check=False):
        raise NodeError(
            f"no bridge {bridge} in network namespace {node_netns!r}: "
            "start the cluster with `agentry-cluster up`"
        )


def write_netns_etc(net: PodNetwork, resolv_conf: str, hosts: str) -> None:
    """Files `ip netns exec` bind-mounts over /etc inside the pod."""
    etc = NETNS_ETC / net.netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(resolv_conf)
    (etc / "hosts").write_text(hosts)


async def create(net: PodNetwork, resolv_conf: str, hosts: str) -> None:
    """Create the namespace, wire it to the bridge and give it its address."""
    await delete(net)
    write_netns_etc(net, resolv_conf, hosts)
    await _ip("netns", "add", net.netns)
    await _ip(
        "link",
        "add",
        net.host_veth,
        "netns",
        net.node_netns,
        "type",
        "veth",
        "peer",
        "name",
        net.peer_veth,
        "netns",
        net.netns,
    )
    await _ip("-n", net.node_netns, "link", "set", net.host_veth, "master", net.bridge, "up")
    # Hairpin, as the CNI bridge plugin sets it: a pod's packet to its own Service is DNATed
    # back to the pod and bridged out of the port it came in by.
    await _ip(
        "-n", net.node_netns, "link", "set", net.host_veth, "type", "bridge_slave", "hairpin", "on"
    )
    batch = "\n".join(
        [
            f"link set {net.peer_veth} name eth0",
            f"addr add {net.ip}/{net.prefix} dev eth0",
            "link set eth0 up",
            "link set lo up",
            f"route add default via {net.gateway}",
        ]
    )
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "-n",
        net.netns,
        "-batch",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(batch.encode() + b"\n")
    if proc.returncode != 0:
        raise NodeError(f"configuring {net.netns} failed: {err.decode().strip()}")


async def kill_processes(net: PodNetwork) -> int:
    """SIGKILL every process still in the namespace (left by a node that was killed)."""
    out = await _ip("netns", "pids", net.netns, check=False)
    pids = [int(p) for p in out.split() if p.isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


async def delete(net: PodNetwork) -> None:
    """Remove the namespace (its veth end goes with it) and its /etc/netns files."""
    await _ip("netns", "delete", net.netns, check=False)
    if net.node_netns:
        await _ip("-n", net.node_netns, "link", "delete", net.host_veth, check=False)
    shutil.rmtree(NETNS_ETC / net.netns, ignore_errors=True)

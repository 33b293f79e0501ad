"""The cluster's Linux bridge: `agbr<n>` with 10.244.<n>.1/24, created before the API server.

Pods (network namespaces made by the process node) hang off this bridge and reach the API
server at the bridge address; the API server advertises that address. `n` is the first
index whose bridge name, address and /24 are all unused on this host, so two clusters run
side by side. The bridge carries an alias naming its state directory, and `delete_bridge`
removes only a bridge that carries ours.
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


@dataclass(frozen=True)
class Bridge:
    index: int

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def ip(self) -> str:
        return f"10.244.{self.index}.1"

    @property
    def cidr(self) -> str:
        return f"10.244.{self.index}.0/24"


def owner_alias(state_dir: Path) -> str:
    """The link alias that marks a bridge as this cluster's (the kernel keeps 255 bytes)."""
    return f"agentry-cluster {state_dir}"[:255]


def choose_index(
    link_names: set[str], used_networks: list[ipaddress.IPv4Network], max_index: int = MAX_INDEX
) -> int:
    """The first index whose bridge name is free and whose /24 overlaps nothing in use."""
    for index in range(max_index + 1):
        bridge = Bridge(index)
        if bridge.name in link_names:
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
    """Create, address and bring up the first free bridge, marked as `state_dir`'s."""
    with _host_lock():
        links = {str(link["ifname"]) for link in _ip_json("link", "show")}
        used = used_networks_from(_ip_json("-4", "addr", "show"), _ip_json("-4", "route", "show"))
        bridge = Bridge(choose_index(links, used))
        _ip("link", "add", bridge.name, "type", "bridge")
        try:
            _ip("link", "set", bridge.name, "alias", owner_alias(state_dir))
            _ip("addr", "add", f"{bridge.ip}/24", "dev", bridge.name)
            _ip("link", "set", bridge.name, "up")
        except BaseException:
            _ip("link", "del", bridge.name, check=False)
            raise
    return bridge


def bridge_owned_by(name: str, state_dir: Path) -> bool:
    links = _ip_json("link", "show", "dev", name, check=False)
    return bool(links) and links[0].get("ifalias") == owner_alias(state_dir)


def delete_bridge(name: str, state_dir: Path) -> bool:
    """Delete bridge `name` if it exists and is this cluster's; say whether it was deleted."""
    if not name or not bridge_owned_by(name, state_dir):
        return False
    _ip("link", "del", name)
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


def _ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _ip_json(*args: str, check: bool = True) -> list[dict[str, object]]:
    out = _ip("-j", *args, check=check)
    data = json.loads(out) if out.strip() else []
    return list(data)

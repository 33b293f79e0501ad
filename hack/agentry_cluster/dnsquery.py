"""One DNS A query to a chosen server, standard library only.

`up` runs it inside the cluster's node network namespace (`ip netns exec NS python -m
agentry_cluster.dnsquery NAME SERVER`) to see the cluster DNS answer through its Service
address; the host's resolver cannot be pointed at another server for one lookup.
"""

from __future__ import annotations

import random
import socket
import struct
import sys

TYPE_A = 1
CLASS_IN = 1


def build_query(name: str, ident: int) -> bytes:
    """A recursion-desired query for the A records of `name`."""
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(
        bytes([len(part)]) + part.encode("ascii") for part in name.rstrip(".").split(".")
    )
    return header + labels + b"\0" + struct.pack("!HH", TYPE_A, CLASS_IN)


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def parse_answer(data: bytes, ident: int) -> tuple[int, list[str]]:
    """The response code and the IPv4 addresses of the answer section."""
    got_id, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", data[:12])
    if got_id != ident:
        raise ValueError("the answer is for another query")
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(data, offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        rtype, _, _, rdlength = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        if rtype == TYPE_A and rdlength == 4:
            addresses.append(socket.inet_ntoa(data[offset : offset + 4]))
        offset += rdlength
    return flags & 0x000F, addresses


def query(name: str, server: str, timeout: float = 1.0) -> tuple[int, list[str]]:
    ident = random.randrange(1 << 16)  # noqa: S311 - a query id, not a secret
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_query(name, ident), (server, 53))
        data, _ = sock.recvfrom(4096)
    return parse_answer(data, ident)


def main(argv: list[str]) -> int:
    """Print the addresses of `argv[0]` as `argv[1]` answers; exit 1 on no answer."""
    name, server = argv
    try:
        rcode, addresses = query(name, server)
    except (OSError, ValueError) as exc:
        print(f"no answer from {server}: {exc}", file=sys.stderr)
        return 1
    print(" ".join(addresses))
    return 0 if rcode == 0 and addresses else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

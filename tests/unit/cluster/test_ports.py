"""Free ports: distinct, bindable, and never one the caller excluded."""

from __future__ import annotations

import socket

from agentry_cluster import ports


def test_free_ports_are_distinct_and_can_be_bound() -> None:
    chosen = ports.free_ports(5)
    assert len(set(chosen)) == 5
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))


def test_free_ports_skip_excluded_ports() -> None:
    first = ports.free_ports(3)
    again = ports.free_ports(3, exclude=first)
    assert not set(first) & set(again)


def test_a_port_in_use_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        assert not ports.is_free(sock.getsockname()[1])

"""Free TCP ports, chosen when a cluster starts so that two clusters can run side by side.

The kernel picks them (bind to port 0); all sockets stay open until every port is chosen,
so one call never returns the same port twice. Another program could still take a port
before our process binds it; the window is a few seconds and a failed start says so.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable


def free_ports(count: int, *, host: str = "0.0.0.0", exclude: Iterable[int] = ()) -> list[int]:  # noqa: S104
    """`count` distinct ports that are free on `host` now, none of them in `exclude`."""
    excluded = set(exclude)
    chosen: list[int] = []
    with contextlib.ExitStack() as stack:
        attempts = 0
        while len(chosen) < count:
            attempts += 1
            if attempts > count * 20:
                raise RuntimeError(f"could not find {count} free ports on {host}")
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            if port not in excluded and port not in chosen:
                chosen.append(port)
    return chosen


def is_free(port: int, host: str = "0.0.0.0") -> bool:  # noqa: S104
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True

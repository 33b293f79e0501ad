"""A TCP relay in front of a PostgreSQL server that can play the first half of a server
shutdown: the FATAL message reaches every idle client connection, and the close that
follows it on a real server is held back.

A real server sends both within microseconds, so a turn that takes such a connection
from the pool in between is a rare race; holding the close makes it happen every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from tests.support.runtime_process import free_port


def error_response(severity: str, code: str, message: str) -> bytes:
    """A protocol 3 ErrorResponse ('E'): typed NUL-terminated fields, then one NUL."""
    fields = b"".join(
        kind + text.encode() + b"\0"
        for kind, text in ((b"S", severity), (b"V", severity), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


ADMIN_SHUTDOWN = error_response(
    "FATAL", "57P01", "terminating connection due to administrator command"
)


@dataclass
class PostgresRelay:
    """Relays `upstream` (a libpq URI) on a local port; `url` is the same URI through it."""

    upstream: str
    port: int = field(default_factory=free_port)
    _clients: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        parts = urlsplit(self.upstream)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def send_shutdown_without_closing(self) -> int:
        """Write the server's FATAL to every open client connection; how many."""
        for writer in self._clients:
            writer.write(ADMIN_SHUTDOWN)
        return len(self._clients)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(self.upstream)
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
        self._clients.append(writer)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._clients.remove(writer)

    async def __aenter__(self) -> PostgresRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._clients:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

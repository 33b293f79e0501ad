"""A TCP server that accepts connections, reads what comes and never answers a byte: a
model provider behind a stuck load balancer, or an API server whose packets are lost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tests.support.runtime_process import free_port


@dataclass
class SilentEndpoint:
    """Counts the connections it accepted and those still open (the client's end not
    closed yet): after a client gave up, the second must fall back to 0."""

    open_connections: int = 0
    accepted: int = 0
    server: asyncio.Server | None = None
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_connections += 1
        try:
            while await reader.read(65536):  # until the client closes its end
                pass
        except ConnectionError:
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    async def __aenter__(self) -> SilentEndpoint:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

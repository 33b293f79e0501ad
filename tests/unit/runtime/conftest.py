"""Fixtures for the runtime's unit tests: settings, a key ring, and a running app client.

``make_client`` builds the app through ``create_app`` — the constructor production uses —
with a manual clock, a ``MemoryStore`` and whatever fakes a test passes.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

# tests/support is imported as `tests.support`; the repository root is not on sys.path
# under pytest's default import mode.
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from agent_runtime.app import create_app, record_context  # noqa: E402
from agent_runtime.clock import ManualClock  # noqa: E402
from agent_runtime.crypto import KeyRing  # noqa: E402
from agent_runtime.logs import configure_logging  # noqa: E402
from agent_runtime.state import MemoryStore  # noqa: E402
from tests.support.runtime import MakeClient, make_settings  # noqa: E402


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    return KeyRing.generate_development(tmp_path / "keys")


class LogStream(io.StringIO):
    """The log output; reading it first waits for the lines already logged to be written
    (the runtime's handler writes on a thread of its own)."""

    handler: logging.Handler | None = None

    def getvalue(self) -> str:
        if self.handler is not None:
            self.handler.flush()
        return super().getvalue()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every log line, as the runtime formats it in production (JSON, debug level)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = LogStream()
    stream.handler = configure_logging(agent="demo", replica="demo-0", level="debug", stream=stream)
    yield stream
    stream.handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_client(
    tmp_path: Path, keyring: KeyRing, clock: ManualClock
) -> AsyncIterator[MakeClient]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**options: Any) -> TestClient[Any, Any]:
        settings = options.pop("settings", None) or make_settings(
            tmp_path, **options.pop("overrides", {})
        )
        store = options.pop("store", None) or MemoryStore(keyring, record_context(settings))
        app = create_app(
            settings,
            clock=options.pop("clock", clock),
            keyring=options.pop("keyring", keyring),
            store=store,
            **options,
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()

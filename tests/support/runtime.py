"""Helpers shared by the runtime's tests: settings for a test app, the client factory type,
and a directory laid out as the kubelet mounts a Secret or ConfigMap volume."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from agent_runtime.clock import ManualClock
from agent_runtime.config import Settings
from agent_runtime.heartbeat import NullPublisher
from agent_runtime.state import ANONYMOUS_CLIENT, SessionKey

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


class MountedVolume:
    """One key of a Secret or ConfigMap volume: `<name>` -> `..data/<name>`, `..data` -> a
    timestamped directory, updated by swapping the `..data` symlink (as the kubelet does)."""

    def __init__(self, root: Path, name: str, text: str) -> None:
        self.root = root
        self.name = name
        self.versions = 0
        self.update(text)
        (root / name).symlink_to(f"..data/{name}")

    @property
    def path(self) -> Path:
        return self.root / self.name

    def update(self, text: str) -> None:
        self.versions += 1
        version = self.root / f"..2026_11_29_{self.versions}"
        version.mkdir()
        (version / self.name).write_text(text)
        swap = self.root / "..data_tmp"
        swap.symlink_to(version.name)
        os.replace(swap, self.root / "..data")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "agent_name": "demo",
        "namespace": "team-a",
        "replica": "demo-0",
        "state_backend": "memory",
        "state_dir": tmp_path / "state",
        "log_dir": tmp_path,
        "min_free_disk_bytes": 0,
        "keys_dir": None,
    }
    values.update(overrides)
    return Settings(**values)


def anon(session: str) -> SessionKey:
    """The key of a session of the anonymous client (every caller without auth)."""
    return SessionKey(ANONYMOUS_CLIENT, session)


async def readiness_of_state(client: TestClient[Any, Any]) -> tuple[int, str]:
    """The /readyz status and its `state` line (`[+]state ok ...` or `[-]state failed: ...`)."""
    response = await client.get("/readyz?verbose")
    text = await response.text()
    line = next(line for line in text.splitlines() if line[3:].startswith("state "))
    return response.status, line


async def next_heartbeat(publisher: NullPublisher, clock: ManualClock) -> dict[str, Any]:
    """Advance the clock one heartbeat interval and return the beat that follows."""
    beats = len(publisher.published)
    await clock.advance(10)
    while len(publisher.published) == beats:  # the beat's health checks run in a thread
        await clock.advance(0)
    return publisher.published[-1]

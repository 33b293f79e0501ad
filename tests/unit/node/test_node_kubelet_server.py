"""The kubelet endpoint `kubectl logs` reaches through the API server: current and
previous runs, tail, a clear 404 for an unknown container and 400 for a bad parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from agentry_cluster.node.kubelet_server import create_app
from agentry_cluster.node.logs import format_record
from aiohttp.test_utils import TestClient, TestServer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeRunner:
    current_log: Path
    previous_log: Path | None
    running: bool = False


def write_log(path: Path, *lines: str) -> Path:
    path.write_text("".join(format_record(T0, "stdout", line, False) for line in lines))
    return path


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    runner = FakeRunner(
        current_log=write_log(tmp_path / "1.log", "second run", "still second"),
        previous_log=write_log(tmp_path / "0.log", "first run"),
    )

    def find(ns: str, pod: str, container: str) -> Any:
        return runner if (ns, pod, container) == ("team", "agent-0", "runtime") else None

    async with TestClient(TestServer(create_app(find))) as test_client:
        yield test_client


async def text(client: TestClient[Any, Any], url: str) -> tuple[int, str]:
    resp = await client.get(url)
    return resp.status, await resp.text()


async def test_logs_of_the_current_and_the_previous_run(client: TestClient[Any, Any]) -> None:
    base = "/containerLogs/team/agent-0/runtime"
    assert await text(client, base) == (200, "second run\nstill second\n")
    assert await text(client, f"{base}?previous=true") == (200, "first run\n")
    assert await text(client, f"{base}?tailLines=1") == (200, "still second\n")
    assert await text(client, f"{base}?limitBytes=6") == (200, "second")


async def test_an_unknown_container_is_not_found(client: TestClient[Any, Any]) -> None:
    status, body = await text(client, "/containerLogs/team/agent-0/sidecar")
    assert status == 404
    assert "sidecar" in body


async def test_a_bad_parameter_is_a_bad_request(client: TestClient[Any, Any]) -> None:
    status, body = await text(client, "/containerLogs/team/agent-0/runtime?tailLines=many")
    assert status == 400
    assert "tailLines" in body

"""The standard surfaces on two replicas sharing the postgres backend (issue 9).

Checks, with two whole runtimes (``create_app``) on one database, as a Service would
spread one client's calls: A2A messages of one ``contextId`` sent to different replicas
are one conversation; ``GetTask`` on either replica answers a task the other created
(task ids name a turn of the shared session memory: no per-replica task table); an
OpenAI call with ``X-Session-ID`` on one replica continues what the other stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_runtime.app import create_app
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from tests.support.runtime import make_settings

A2A = {"A2A-Version": "1.0"}


@pytest.fixture
async def two_replicas(
    postgres_url: str, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[list[TestClient[Any, Any]]]:
    clients = []
    for ordinal in range(2):
        settings = make_settings(
            tmp_path / str(ordinal),
            state_backend="postgres",
            postgres_url=postgres_url,
            replica=f"demo-{ordinal}",
        )
        client = TestClient(TestServer(create_app(settings, clock=clock, keyring=keyring)))
        await client.start_server()
        clients.append(client)
    yield clients
    for client in clients:
        await client.close()


async def send(client: TestClient[Any, Any], text: str) -> dict[str, Any]:
    message = {
        "messageId": text,
        "role": "ROLE_USER",
        "contextId": "ctx",
        "parts": [{"text": text}],
    }
    request = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    body = await (await client.post("/v1/a2a", json=request, headers=A2A)).json()
    task: dict[str, Any] = body["result"]["task"]
    return task


async def get_task(client: TestClient[Any, Any], task_id: str) -> dict[str, Any]:
    request = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
    body: dict[str, Any] = await (await client.post("/v1/a2a", json=request, headers=A2A)).json()
    return body


async def test_any_replica_continues_a_context_and_answers_get_task(
    two_replicas: list[TestClient[Any, Any]],
) -> None:
    first, second = two_replicas
    one = await send(first, "my order is 4711")
    two = await send(second, "where is it?")
    assert (one["id"], two["id"]) == ("ctx~1", "ctx~2")
    assert "“my order is 4711”" in two["artifacts"][0]["parts"][0]["text"]
    fetched = await get_task(second, one["id"])
    assert fetched["result"]["artifacts"] == one["artifacts"]
    assert (await get_task(first, "ctx~3"))["error"]["code"] == -32001
    chat = await first.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "and the invoice?"}]},
        headers={"X-Session-ID": "ctx"},
    )
    reply = (await chat.json())["choices"][0]["message"]["content"]
    assert "(turn 3)" in reply
    assert "“where is it?”" in reply

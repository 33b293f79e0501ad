"""A2A 1.0, driven by the official ``a2a-sdk`` client (issue 9).

Checks, against a runtime built by ``create_app`` and served on a real port: the client
resolves the card (every field A2A 1.0 requires, skills from the settings, the bearer
scheme when auth is on); two messages in one ``contextId`` are one session whose memory
the second reply uses and ``GET /v1/sessions/{id}`` shows; a streamed reply arrives as the
working task, artifact pieces that make the whole reply, then the completed status;
``GetTask`` returns a task from session memory and ``CancelTask`` says it cannot be
cancelled; the token decides whose tasks and contexts a caller sees; a degraded reply is
marked; hostile requests (no version header, malformed JSON, an unknown method, a file
part, an oversized body, a wrong token) get clear JSON-RPC or HTTP errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import Client, ClientConfig, create_client
from a2a.client.errors import A2AClientError
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
)
from aiohttp.test_utils import TestClient

from tests.support.fake_provider import FakeProvider
from tests.support.runtime import MakeClient
from tests.support.tenancy import write_tokens

RPC_HEADERS = {"A2A-Version": "1.0"}
SKILLS = [{"id": "orders", "name": "Order status", "description": "Where it is", "tags": ["o"]}]

Connect = Callable[..., Any]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """An a2a-sdk client for a test runtime, from its card; closed after the test."""
    opened: list[tuple[Client, httpx.AsyncClient]] = []

    async def make(
        client: TestClient[Any, Any], token: str | None = None, *, streaming: bool = True
    ) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx.AsyncClient(headers=headers)
        config = ClientConfig(streaming=streaming, httpx_client=http)
        a2a = await create_client(str(client.make_url("")), client_config=config)
        opened.append((a2a, http))
        return a2a

    yield make
    for a2a, http in opened:
        await a2a.close()
        await http.aclose()


def message(text: str, context: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=new_text_message(text, context_id=context, role=Role.ROLE_USER)
    )


async def events(a2a: Client, text: str, context: str) -> list[StreamResponse]:
    return [event async for event in a2a.send_message(message(text, context))]


async def test_the_card_holds_every_required_field(make_client: MakeClient) -> None:
    client = await make_client(overrides={"description": "Answers about orders", "skills": SKILLS})
    card = await (await client.get("/.well-known/agent-card.json")).json()
    assert card["name"] == "demo"
    assert card["description"] == "Answers about orders"
    assert card["version"]
    (interface,) = card["supportedInterfaces"]
    assert interface["url"] == str(client.make_url("/v1/a2a"))
    assert interface["protocolBinding"] == "JSONRPC"
    assert interface["protocolVersion"] == "1.0"
    assert card["capabilities"]["streaming"] is True
    assert card["defaultInputModes"] == card["defaultOutputModes"] == ["text/plain"]
    assert card["skills"] == SKILLS
    assert "securitySchemes" not in card
    assert await (await client.get("/.well-known/agent.json")).json() == card


async def test_with_auth_on_the_card_names_the_bearer_scheme(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    card = await (await client.get("/.well-known/agent-card.json")).json()
    assert card["securitySchemes"] == {"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}}
    assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
    assert card["skills"][0]["id"] == "chat"  # a default skill: the field is required


async def test_two_messages_in_one_context_share_its_memory(
    make_client: MakeClient, connect: Connect
) -> None:
    client = await make_client(overrides={"instructions": "You are Ada."})
    a2a = await connect(client, streaming=False)
    (first,) = await events(a2a, "my order is 4711", "ctx-1")
    (second,) = await events(a2a, "where is it", "ctx-1")
    assert first.task.id == "ctx-1~1"
    assert second.task.id == "ctx-1~2"
    assert second.task.status.state == TaskState.TASK_STATE_COMPLETED
    reply = second.task.artifacts[0].parts[0].text
    assert reply.startswith("[Ada] ")
    assert "“my order is 4711”" in reply
    stored = await (await client.get("/v1/sessions/ctx-1")).json()
    assert [m["content"] for m in stored["messages"]][::2] == ["my order is 4711", "where is it"]


async def test_a_streamed_reply_is_the_task_then_pieces_then_completed(
    make_client: MakeClient, connect: Connect
) -> None:
    client = await make_client()
    a2a = await connect(client)
    got = await events(a2a, "tell me something long", "ctx-s")
    assert got[0].task.status.state == TaskState.TASK_STATE_WORKING
    pieces = [e.artifact_update for e in got if e.HasField("artifact_update")]
    assert len(pieces) > 3
    assert not pieces[0].append
    assert all(p.append for p in pieces[1:])
    final = got[-1].status_update
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    whole = "".join(p.artifact.parts[0].text for p in pieces)
    assert whole == final.status.message.parts[0].text
    assert {e.task.id for e in got[:1]} == {final.task_id} == {"ctx-s~1"}


async def test_get_task_answers_from_memory_and_cancel_is_refused(
    make_client: MakeClient, connect: Connect
) -> None:
    client = await make_client()
    a2a = await connect(client)
    got = await events(a2a, "hello", "ctx-g")
    task = await a2a.get_task(GetTaskRequest(id=got[-1].status_update.task_id))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.history[0].parts[0].text == "hello"
    assert task.artifacts[0].parts[0].text == got[-1].status_update.status.message.parts[0].text
    with pytest.raises(TaskNotCancelableError):
        await a2a.cancel_task(CancelTaskRequest(id=task.id))
    for missing in ("ctx-g~2", "nope~1", "no-separator", "ctx-g~x"):
        with pytest.raises(TaskNotFoundError):
            await a2a.get_task(GetTaskRequest(id=missing))


async def test_the_token_decides_whose_tasks_a_caller_sees(
    make_client: MakeClient, connect: Connect, tmp_path: Path
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    alice = await connect(client, "tok-alice-123", streaming=False)
    bob = await connect(client, "tok-bob-456", streaming=False)
    (task,) = await events(alice, "alice's secret", "shared")
    with pytest.raises(TaskNotFoundError):
        await bob.get_task(GetTaskRequest(id=task.task.id))
    (bobs,) = await events(bob, "bob here", "shared")
    assert bobs.task.id == "shared~1"  # his own session of the same id
    wrong = await client.post(
        "/v1/a2a",
        json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x~1"}},
        headers={**RPC_HEADERS, "Authorization": "Bearer tok-wrong"},
    )
    assert wrong.status == 401


async def test_a_degraded_reply_is_marked(make_client: MakeClient, connect: Connect) -> None:
    async with FakeProvider() as fake:
        client = await make_client(overrides=fake.runtime_overrides(model_max_retries=0))
        fake.fail(1, 500)
        a2a = await connect(client, streaming=False)
        (event,) = await events(a2a, "hello", "ctx-d")
        assert dict(event.task.metadata) == {"degraded": True}


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}


def send(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return rpc(
        "SendMessage",
        {"message": {"messageId": "m1", "role": "ROLE_USER", "contextId": "h", "parts": parts}},
    )


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (rpc("GetTask", {"id": "h~1"}), {}, 200, -32009),
        (b"{not json", RPC_HEADERS, 400, -32700),
        (b"[]", RPC_HEADERS, 400, -32600),
        (rpc("tasks/resubscribe", {}), RPC_HEADERS, 200, -32601),
        (rpc("GetTask", {"id": 5, "historyLength": "many"}), RPC_HEADERS, 200, -32602),
        (send([{"url": "https://example.com/x.png"}]), RPC_HEADERS, 200, -32005),
        (send([{"text": "   "}]), RPC_HEADERS, 200, -32602),
        (send([]), RPC_HEADERS, 200, -32602),
    ],
)
async def test_hostile_requests_get_clear_errors(
    make_client: MakeClient, body: Any, headers: dict[str, str], status: int, code: int
) -> None:
    client = await make_client()
    data = body if isinstance(body, bytes) else None
    response = await client.post("/v1/a2a", data=data, json=None if data else body, headers=headers)
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]


async def test_an_oversized_body_is_413(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post(
        "/v1/a2a", json=send([{"text": "x" * 70_000}]), headers=RPC_HEADERS
    )
    assert response.status == 413


async def test_a_client_error_from_the_sdk_names_the_problem(
    make_client: MakeClient, connect: Connect
) -> None:
    client = await make_client(overrides={"max_turns": 1})
    a2a = await connect(client, streaming=False)
    await events(a2a, "one", "full")
    with pytest.raises(A2AClientError, match=r"MAX_TURNS"):
        await events(a2a, "two", "full")


async def test_behind_the_api_server_proxy_the_card_points_back_through_it(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    proxy = "/api/v1/namespaces/team-a/services/demo:http/proxy"
    card = await (
        await client.get(
            "/.well-known/agent-card.json",
            headers={
                "Host": "10.0.0.1:6443",
                "X-Forwarded-Uri": f"{proxy}/.well-known/agent-card.json",
            },
        )
    ).json()
    assert card["supportedInterfaces"][0]["url"] == f"https://10.0.0.1:6443{proxy}/v1/a2a"


async def test_the_public_url_setting_wins(make_client: MakeClient) -> None:
    client = await make_client(overrides={"public_url": "https://agents.example.com/demo/"})
    card = await (await client.get("/.well-known/agent-card.json")).json()
    assert card["supportedInterfaces"][0]["url"] == "https://agents.example.com/demo/v1/a2a"

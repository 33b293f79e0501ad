"""The three surfaces are one pipeline (issue 9): several clients at once, one session id.

Checks: alice and bob each send turns to their session ``shared`` through the native
API, the OpenAI surface (``X-Session-ID``) and A2A (``contextId``), all concurrently; each
ends with one session holding exactly their own turns, numbered 1..n without a gap or a
repeat, question and answer paired; and over a per-client rate limit every surface
answers 429 to the same client.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.runtime import MakeClient
from tests.support.tenancy import ALICE, BOB, write_tokens

A2A = {"A2A-Version": "1.0"}


async def native(client: TestClient[Any, Any], who: dict[str, str], text: str) -> int:
    response = await client.post(
        "/v1/sessions/shared/messages", json={"content": text}, headers=who
    )
    assert response.status == 200, await response.text()
    return int((await response.json())["turn"])


async def chat(client: TestClient[Any, Any], who: dict[str, str], text: str) -> int:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": text}]},
        headers={**who, "X-Session-ID": "shared"},
    )
    assert response.status == 200, await response.text()
    return -1  # the completion has no turn number; the session read below checks it


async def a2a(client: TestClient[Any, Any], who: dict[str, str], text: str) -> int:
    message = {
        "messageId": text,
        "role": "ROLE_USER",
        "contextId": "shared",
        "parts": [{"text": text}],
    }
    response = await client.post(
        "/v1/a2a",
        json={
            "jsonrpc": "2.0",
            "id": text,
            "method": "SendMessage",
            "params": {"message": message},
        },
        headers={**who, **A2A},
    )
    body = await response.json()
    assert "result" in body, body
    return int(body["result"]["task"]["id"].rsplit("~", 1)[1])


async def test_concurrent_clients_on_every_surface_keep_one_consistent_session_each(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    calls = []
    for who, name in ((ALICE, "alice"), (BOB, "bob")):
        for i in range(4):
            for surface in (native, chat, a2a):
                calls.append(surface(client, who, f"{name}-{surface.__name__}-{i}"))
    turns = await asyncio.gather(*calls)
    assert all(t >= 1 or t == -1 for t in turns)
    for who, name, other in ((ALICE, "alice", "bob"), (BOB, "bob", "alice")):
        session = await (await client.get("/v1/sessions/shared", headers=who)).json()
        messages = session["messages"]
        assert session["total"] == 24
        questions = [m["content"] for m in messages[::2]]
        assert [m["role"] for m in messages] == ["user", "assistant"] * 12
        assert sorted(questions) == sorted(
            f"{name}-{s}-{i}" for s in ("native", "chat", "a2a") for i in range(4)
        )
        assert not any(other in m["content"] for m in messages)
        # Each reply answers its own question: the builtin counts the turn it answered.
        for number, answer in enumerate(messages[1::2], start=1):
            assert f"(turn {number})" in answer["content"]


async def test_over_the_client_limit_every_surface_answers_429(make_client: MakeClient) -> None:
    client = await make_client(
        overrides={"rate_limit_rps": 1, "rate_limit_burst": 1, "rate_limit_client_key": "header"}
    )
    me = {"X-Client-ID": "greedy"}
    assert await native(client, me, "first") == 1
    for path, body, extra in (
        ("/v1/sessions/x/messages", {"content": "x"}, {}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, {}),
        ("/v1/a2a", {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x~1"}}, A2A),
    ):
        response = await client.post(path, json=body, headers={**me, **extra})
        assert response.status == 429, path
        assert response.headers["Retry-After"]

"""The HTTP API: sessions, validation, errors, limits, auth, OpenAPI.

Checks: a POST answers with reply/degraded/turn and is visible in GET; DELETE forgets;
unknown sessions are 404; bad JSON and a missing/empty `content` are 400 naming the
field; a body over the limit is 413; with auth on, a missing or wrong token is 401;
concurrent POSTs on one session never lose or interleave turns; over MAX_CONCURRENT is
503; /openapi.json describes every route.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent_runtime.services import SERVICES
from tests.support.fake_provider import FakeProvider
from tests.support.runtime import MakeClient


async def test_a_message_gets_a_reply_and_the_session_keeps_both_turns(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    first = await client.post("/v1/sessions/s1/messages", json={"content": "hello"})
    assert first.status == 200
    body = await first.json()
    assert body["degraded"] is False
    assert body["turn"] == 1
    assert body["reply"]
    second = await client.post("/v1/sessions/s1/messages", json={"content": "6*7"})
    assert (await second.json())["turn"] == 2
    assert (await second.json())["reply"] == "6*7 = 42"
    session = await (await client.get("/v1/sessions/s1")).json()
    assert session["id"] == "s1"
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"] * 2
    assert session["messages"][2]["content"] == "6*7"


async def test_deleting_a_session_forgets_it(make_client: MakeClient) -> None:
    client = await make_client()
    await client.post("/v1/sessions/gone/messages", json={"content": "hi"})
    assert (await client.delete("/v1/sessions/gone")).status == 204
    assert (await client.get("/v1/sessions/gone")).status == 404
    assert (await client.delete("/v1/sessions/gone")).status == 404


async def test_an_unknown_session_is_404_with_a_json_error(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/v1/sessions/nobody")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_invalid_bodies_are_400_naming_the_field(make_client: MakeClient) -> None:
    client = await make_client()
    cases: list[tuple[Any, str]] = [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"text": "hi"}', "content"),
        (b'{"content": 5}', "content"),
        (b'{"content": "   "}', "content"),
    ]
    for raw, field in cases:
        response = await client.post(
            "/v1/sessions/s/messages", data=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, raw
        assert (await response.json())["error"]["field"] == field, raw
    bad_id = await client.post("/v1/sessions/..%2Fetc/messages", json={"content": "x"})
    assert bad_id.status in (400, 404)


async def test_a_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = await make_client(overrides={"max_body_bytes": 2048})
    response = await client.post("/v1/sessions/s/messages", json={"content": "x" * 5000})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"


async def test_with_auth_on_a_missing_or_wrong_token_is_401(
    make_client: MakeClient, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# callers\nalice:tok-alice-123\ntok-anonymous-456\n")
    client = await make_client(overrides={"auth_tokens_file": tokens})
    payload = {"content": "hi"}
    assert (await client.post("/v1/sessions/s/messages", json=payload)).status == 401
    wrong = {"Authorization": "Bearer tok-nope"}
    response = await client.post("/v1/sessions/s/messages", json=payload, headers=wrong)
    assert response.status == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    for token in ("tok-alice-123", "tok-anonymous-456"):
        ok = {"Authorization": f"Bearer {token}"}
        assert (
            await client.post("/v1/sessions/s/messages", json=payload, headers=ok)
        ).status == 200
    assert (await client.get("/livez")).status == 200  # probes need no token


async def test_concurrent_posts_on_one_session_never_lose_or_interleave_turns(
    make_client: MakeClient,
) -> None:
    async with FakeProvider(latency=0.01) as fake:
        client = await make_client(
            overrides={
                "model_provider": "openai",
                "model_endpoint": fake.url,
                "model_name": "m",
            }
        )
        contents = [f"message {i}" for i in range(12)]
        responses = await asyncio.gather(
            *(client.post("/v1/sessions/busy/messages", json={"content": c}) for c in contents)
        )
        turns = sorted([(await r.json())["turn"] for r in responses])
        assert turns == list(range(1, 13))
        messages = (await (await client.get("/v1/sessions/busy")).json())["messages"]
    assert len(messages) == 24
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert question["role"] == "user"
        assert answer["role"] == "assistant"
        assert answer["content"] == f"model says: {question['content']}"
    assert sorted(m["content"] for m in messages[::2]) == sorted(contents)


async def test_more_requests_in_flight_than_max_concurrent_are_shed_with_503(
    make_client: MakeClient,
) -> None:
    async with FakeProvider() as fake:
        fake.hang(2)
        client = await make_client(
            overrides={
                "model_provider": "openai",
                "model_endpoint": fake.url,
                "model_name": "m",
                "max_concurrent": 2,
                "max_concurrent_per_client": 3,  # one client here; its own cap is tested apart
                "model_timeout_seconds": 30,
            }
        )
        held = [
            asyncio.create_task(
                client.post(f"/v1/sessions/h{i}/messages", json={"content": "wait"})
            )
            for i in range(2)
        ]
        await fake.wait_for_completions(2)
        shed = await client.post("/v1/sessions/other/messages", json={"content": "hi"})
        assert shed.status == 503
        assert shed.headers["Retry-After"] == "1"
        assert (await shed.json())["error"]["code"] == "overloaded"
        fake.release()
        assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
        summary = client.app[SERVICES].metrics.summary()
        assert summary["rejected"] == 1


async def test_openapi_describes_every_route(make_client: MakeClient) -> None:
    client = await make_client()
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    for route in client.app.router.routes():
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD":
            continue
        assert path in document["paths"], path
        assert route.method.lower() in document["paths"][path], (path, route.method)


async def test_every_response_carries_a_request_id(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/v1/sessions/none")
    assert len(generated.headers["X-Request-ID"]) == 32

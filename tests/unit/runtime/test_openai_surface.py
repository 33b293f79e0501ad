"""The OpenAI-compatible surface, driven by the official ``openai`` SDK (issue 9).

Checks, against a runtime built by ``create_app`` and served on a real port: the SDK's
``chat.completions.create`` with and without streaming answers in the instructions'
persona with ``usage`` filled; with ``X-Session-ID`` the second reply is produced with the
first turn in memory and ``GET /v1/sessions/{id}`` holds both turns, while without it
nothing is stored; the SDK's ``api_key`` is our bearer token (also through
``X-Agentry-Authorization``), a wrong one is the SDK's AuthenticationError, and two
clients with one session id keep two sessions; rate limits are the SDK's RateLimitError
with Retry-After; a failing model gives a degraded reply marked in the body and a
header; a streaming model cut mid-reply ends the SDK's stream with an error and leaves no
half turn; hostile bodies get 400 or 413 in the OpenAI error shape naming the field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from tests.support.fake_provider import FakeProvider
from tests.support.runtime import MakeClient
from tests.support.tenancy import write_tokens

INSTRUCTIONS = "You are Ada, the help desk of Example Corp.\nAnswer briefly."


SDK = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
async def sdk() -> AsyncIterator[SDK]:
    """The SDK pointed at a test runtime (no retries); its connections closed after."""
    opened: list[openai.AsyncOpenAI] = []

    def make(client: TestClient[Any, Any], api_key: str = "unused", **options: Any) -> Any:
        api = openai.AsyncOpenAI(
            base_url=str(client.make_url("/v1")), api_key=api_key, max_retries=0, **options
        )
        opened.append(api)
        return api

    yield make
    for api in opened:
        await api.close()


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_models_lists_the_agent(make_client: MakeClient, sdk: SDK) -> None:
    client = await make_client()
    models = await sdk(client).models.list()
    assert [m.id for m in models.data] == ["demo"]


async def test_a_completion_answers_in_the_instructions_persona_with_usage(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    client = await make_client(overrides={"instructions": INSTRUCTIONS})
    completion = await sdk(client).chat.completions.create(model="demo", messages=user("hello"))
    reply = completion.choices[0].message.content
    assert reply is not None
    assert reply.startswith("[Ada, the help desk of Example Corp] Hello!")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_a_streamed_completion_arrives_in_chunks_that_make_the_whole_reply(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    client = await make_client(overrides={"instructions": INSTRUCTIONS})
    api = sdk(client)
    whole = await api.chat.completions.create(model="demo", messages=user("what is 6*7"))
    stream = await api.chat.completions.create(
        model="demo", messages=user("what is 6*7"), stream=True
    )
    pieces, usage = [], None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert len(pieces) > 3
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None
    assert usage.completion_tokens > 0


async def test_the_stream_ends_with_done(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post(
        "/v1/chat/completions", json={"model": "demo", "messages": user("hi"), "stream": True}
    )
    assert response.headers["Content-Type"] == "text/event-stream"
    events = [e for e in (await response.text()).split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])


async def test_with_a_session_header_the_second_reply_remembers_the_first_turn(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    client = await make_client()
    api = sdk(client)
    session = {"X-Session-ID": "sdk-1"}
    await api.chat.completions.create(
        model="demo", messages=user("my order number is 4711"), extra_headers=session
    )
    stream = await api.chat.completions.create(
        model="demo", messages=user("where is it"), extra_headers=session, stream=True
    )
    second = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "(turn 2)" in second
    assert "“my order number is 4711”" in second
    stored = await (await client.get("/v1/sessions/sdk-1")).json()
    assert [m["content"] for m in stored["messages"][::2]] == [
        "my order number is 4711",
        "where is it",
    ]
    assert stored["messages"][3]["content"] == second


async def test_without_a_session_header_nothing_is_stored(
    make_client: MakeClient, sdk: SDK
) -> None:
    client = await make_client()
    api = sdk(client)
    reply = await api.chat.completions.create(
        model="demo",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
        ],
    )
    assert "(turn 2)" in (reply.choices[0].message.content or "")  # the request's history
    assert client.app is not None
    from agent_runtime.services import SERVICES

    assert client.app[SERVICES].sessions.session_count == 0


async def test_the_api_key_is_the_bearer_token_and_sessions_stay_per_client(
    make_client: MakeClient, sdk: SDK, tmp_path: Path
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    with pytest.raises(openai.AuthenticationError):
        await sdk(client, "tok-wrong").chat.completions.create(model="demo", messages=user("x"))
    alice = sdk(client, "tok-alice-123")
    # Through the API server proxy the token travels in X-Agentry-Authorization.
    bob = sdk(client, "unused", default_headers={"X-Agentry-Authorization": "Bearer tok-bob-456"})
    shared = {"X-Session-ID": "same-id"}
    await alice.chat.completions.create(model="d", messages=user("alice one"), extra_headers=shared)
    first_of_bob = await bob.chat.completions.create(
        model="d", messages=user("bob one"), extra_headers=shared
    )
    assert "(turn 1)" in (first_of_bob.choices[0].message.content or "")
    again = await alice.chat.completions.create(
        model="d", messages=user("alice two"), extra_headers=shared
    )
    assert "“alice one”" in (again.choices[0].message.content or "")


async def test_over_the_rate_limit_the_sdk_gets_a_rate_limit_error(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    client = await make_client(overrides={"rate_limit_rps": 1, "rate_limit_burst": 1})
    api = sdk(client)
    await api.chat.completions.create(model="demo", messages=user("one"))
    with pytest.raises(openai.RateLimitError) as caught:
        await api.chat.completions.create(model="demo", messages=user("two"))
    assert caught.value.response.headers["Retry-After"]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "rate_limit_error"


async def test_a_failing_model_gives_a_degraded_reply_marked_in_body_and_header(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    async with FakeProvider() as fake:
        client = await make_client(overrides=fake.runtime_overrides(model_max_retries=0))
        fake.fail(2, 500)
        raw = await sdk(client).chat.completions.with_raw_response.create(
            model="demo", messages=user("hello")
        )
        assert raw.headers["X-Agentry-Degraded"] == "true"
        assert raw.parse().model_extra == {"degraded": True}
        stream = await sdk(client).chat.completions.create(
            model="demo", messages=user("hello"), stream=True
        )
        chunks = [c async for c in stream]
        assert all(c.model_extra == {"degraded": True} for c in chunks)


async def test_the_instructions_reach_the_provider_as_the_system_message(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    async with FakeProvider() as fake:
        client = await make_client(overrides=fake.runtime_overrides(instructions=INSTRUCTIONS))
        stream = await sdk(client).chat.completions.create(
            model="demo",
            messages=user("hi there"),
            stream=True,
            extra_headers={"X-Session-ID": "p"},
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == (
            "model says: hi there"
        )
        sent = fake.completions[-1].body
        assert sent is not None
        assert sent["stream"] is True
        assert sent["messages"][0] == {"role": "system", "content": INSTRUCTIONS}


async def test_a_model_stream_cut_mid_reply_is_an_error_and_no_half_turn_is_kept(
    make_client: MakeClient,
    sdk: SDK,
) -> None:
    async with FakeProvider() as fake:
        client = await make_client(overrides=fake.runtime_overrides(model_max_retries=0))
        api = sdk(client)
        session = {"X-Session-ID": "cut"}
        await api.chat.completions.create(model="d", messages=user("first"), extra_headers=session)
        fake.cut(1, after=2)
        stream = await api.chat.completions.create(
            model="d", messages=user("second question"), extra_headers=session, stream=True
        )
        with pytest.raises(openai.APIError, match="stopped in the middle"):
            async for _ in stream:
                pass
        stored = await (await client.get("/v1/sessions/cut")).json()
        assert [m["content"] for m in stored["messages"]] == ["first", "model says: first"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content"),
        (
            b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
            "messages[0].content[0]",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "assistant", "content": "x"}]}', "messages"),
    ],
)
async def test_a_malformed_request_is_a_400_in_the_openai_shape_naming_the_param(
    make_client: MakeClient, body: bytes, param: str
) -> None:
    client = await make_client()
    response = await client.post(
        "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].startswith(param)


async def test_a_bad_session_header_or_a_huge_body_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    bad = await client.post(
        "/v1/chat/completions",
        json={"messages": user("x")},
        headers={"X-Session-ID": "../etc"},
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["param"] == "X-Session-ID"
    huge = await client.post("/v1/chat/completions", json={"messages": user("x" * 70_000)})
    assert huge.status == 413
    assert (await huge.json())["error"]["type"] == "invalid_request_error"


async def test_a_role_that_is_not_a_string_is_a_400_not_a_500(make_client: MakeClient) -> None:
    # Found by the schema fuzzer: an object as the role was looked up in a dict (a 500).
    client = await make_client()
    response = await client.post(
        "/v1/chat/completions", json={"messages": [{"role": {}, "content": "x"}]}
    )
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "messages[0].role"

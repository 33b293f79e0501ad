"""``POST /v1/sessions/{id}/messages?stream=true`` (issue 9).

Checks: ``delta`` events carry the reply as the model writes it and ``done`` carries the
turn once it is journaled; the instructions reach the builtin responder; an error before
the first piece is an ordinary JSON error; a client that hangs up mid-stream leaves no
turn in memory; a model cut mid-reply ends the stream with an ``error`` event and no
half turn.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from agent_runtime.services import SERVICES
from tests.support.fake_provider import FakeProvider
from tests.support.runtime import MakeClient


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_deltas_then_done_with_the_turn(make_client: MakeClient) -> None:
    client = await make_client(overrides={"instructions": "You are Ada."})
    await client.post("/v1/sessions/n/messages", json={"content": "remember 42"})
    response = await client.post(
        "/v1/sessions/n/messages?stream=true",
        json={"content": "and?"},
        headers={"X-Request-ID": "trace-1"},
    )
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["X-Request-ID"] == "trace-1"
    got = events(await response.text())
    kinds = [kind for kind, _ in got]
    assert kinds[-1] == "done"
    assert set(kinds[:-1]) == {"delta"}
    assert len(kinds) > 3
    done = got[-1][1]
    assert done["turn"] == 2
    assert done["degraded"] is False
    assert "".join(d["delta"] for _, d in got[:-1]) == done["reply"]
    assert done["reply"].startswith("[Ada] ")
    assert "“remember 42”" in done["reply"]


async def test_an_error_before_the_first_piece_is_a_plain_json_error(
    make_client: MakeClient,
) -> None:
    client = await make_client(overrides={"max_turns": 1})
    await client.post("/v1/sessions/q/messages", json={"content": "one"})
    response = await client.post("/v1/sessions/q/messages?stream=true", json={"content": "two"})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "session_turn_limit"


async def test_a_client_that_hangs_up_mid_stream_leaves_no_turn(make_client: MakeClient) -> None:
    async with FakeProvider(latency=0.2) as fake:
        client = await make_client(overrides=fake.runtime_overrides())
        url = client.make_url("/v1/sessions/gone/messages?stream=true")
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json={"content": "a long question to answer"}) as response,
        ):
            first = await response.content.readline()
            assert first.startswith(b"event: delta")
        # The next piece's write meets the closed connection; the turn never reaches memory.
        assert client.app is not None
        services = client.app[SERVICES]
        for _ in range(50):
            await asyncio.sleep(0.05)
            if fake.completions and services.in_flight == 0:
                break
        assert services.in_flight == 0
        assert services.sessions.session_count == 0


async def test_a_model_cut_mid_reply_ends_with_an_error_event_and_no_half_turn(
    make_client: MakeClient,
) -> None:
    async with FakeProvider() as fake:
        client = await make_client(overrides=fake.runtime_overrides(model_max_retries=0))
        fake.cut(1, after=1)
        response = await client.post("/v1/sessions/c/messages?stream=true", json={"content": "x"})
        got = events(await response.text())
        assert got[0][0] == "delta"
        assert got[-1][0] == "error"
        assert got[-1][1]["error"]["code"] == "model_stream_broken"
        assert (await client.get("/v1/sessions/c")).status == 404

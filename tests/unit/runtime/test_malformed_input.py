"""Malformed input gets a 4xx or a graceful reply, never a 500 (issue 16, items 1 and 14).

Checks: deeply nested JSON is 400 naming the body; text that cannot be stored as UTF-8
(a lone surrogate) is 400 naming `content`; the builtin calculator answers 20,000 `+`
terms and 30,000 unary minuses politely; a session id with a trailing newline is refused
rather than taken as an id distinct from the one without it.
"""

from __future__ import annotations

import pytest

from tests.support.runtime import MakeClient

JSON = {"Content-Type": "application/json"}


async def test_deeply_nested_json_is_400_naming_the_body(make_client: MakeClient) -> None:
    client = await make_client()
    nested = b"[" * 30_000 + b"]" * 30_000
    response = await client.post("/v1/sessions/s/messages", data=nested, headers=JSON)
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "body"


@pytest.mark.parametrize("raw", [b'{"content": "\\ud800"}', b'{"content": "ok \\udfff ok"}'])
async def test_a_lone_surrogate_is_400_naming_the_content(
    make_client: MakeClient, raw: bytes
) -> None:
    client = await make_client()
    response = await client.post("/v1/sessions/s/messages", data=raw, headers=JSON)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["field"] == "content"
    assert "surrogate" in error["message"]
    assert (await client.get("/v1/sessions/s")).status == 404  # nothing was stored


@pytest.mark.parametrize(
    "expression", ["+".join(["1"] * 20_000), "-" * 30_000 + "1"], ids=["terms", "minuses"]
)
async def test_the_builtin_calculator_declines_huge_expressions_politely(
    make_client: MakeClient, expression: str
) -> None:
    client = await make_client()
    response = await client.post("/v1/sessions/s/messages", json={"content": expression})
    assert response.status == 200
    assert "characters" in (await response.json())["reply"]
    small = await client.post("/v1/sessions/s/messages", json={"content": "-(-2) + 3*4"})
    assert (await small.json())["reply"] == "-(-2) + 3*4 = 14"


async def test_a_session_id_with_a_trailing_newline_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/v1/sessions/abc%0A/messages", json={"content": "hi"})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "id"

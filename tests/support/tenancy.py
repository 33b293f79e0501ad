"""The exchange of issue 15 (alice's private session, bob trying to read and delete it),
shared by the tests of every state backend so each one proves the same behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

TOKENS = "alice:tok-alice-123\nbob:tok-bob-456\n[admin] support-team:tok-admin-789\n"
ALICE = {"Authorization": "Bearer tok-alice-123"}
BOB = {"Authorization": "Bearer tok-bob-456"}
ADMIN = {"Authorization": "Bearer tok-admin-789"}
SECRET = "my password is hunter2"
PRIVATE = "/v1/sessions/alice-private"


def write_tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    return path


async def post(client: TestClient[Any, Any], headers: dict[str, str], content: str) -> int:
    """POST a turn to alice-private as the given caller; the turn number it got."""
    response = await client.post(f"{PRIVATE}/messages", json={"content": content}, headers=headers)
    assert response.status == 200, await response.text()
    return int((await response.json())["turn"])


async def contents(
    client: TestClient[Any, Any], headers: dict[str, str], query: str = ""
) -> list[str]:
    response = await client.get(PRIVATE + query, headers=headers)
    assert response.status == 200, await response.text()
    return [m["content"] for m in (await response.json())["messages"]]


async def not_found_body(client: TestClient[Any, Any], method: str, path: str) -> dict[str, Any]:
    response = await client.request(method, path, headers=BOB)
    assert response.status == 404
    body: dict[str, Any] = await response.json()
    return body


async def bob_cannot_see_or_delete_alices_session(client: TestClient[Any, Any]) -> None:
    """Bob's GET and DELETE of alice's session answer exactly as for a missing one."""
    for method in ("GET", "DELETE"):
        theirs = await not_found_body(client, method, PRIVATE)
        missing = await not_found_body(client, method, "/v1/sessions/alice-privatf")
        assert theirs["error"]["code"] == missing["error"]["code"] == "not_found"
        assert theirs["error"]["message"].replace("alice-private", "ID") == missing["error"][
            "message"
        ].replace("alice-privatf", "ID")


async def play_the_issue_exchange(client: TestClient[Any, Any]) -> None:
    """Alice writes, bob fails to read or delete, alice continues, bob starts his own."""
    assert await post(client, ALICE, SECRET) == 1
    await bob_cannot_see_or_delete_alices_session(client)
    assert await post(client, ALICE, "and my pin is 1234") == 2
    assert await post(client, BOB, "hello from bob") == 1
    assert SECRET not in await contents(client, BOB)


async def ownership_is_as_the_exchange_left_it(client: TestClient[Any, Any]) -> None:
    alices = await contents(client, ALICE)
    assert alices[0] == SECRET
    assert alices[2] == "and my pin is 1234"
    assert (await contents(client, BOB))[0] == "hello from bob"
    assert await post(client, ALICE, "third") == 3
    assert await post(client, BOB, "second") == 2

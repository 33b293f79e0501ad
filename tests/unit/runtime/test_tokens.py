"""The tokens file: today's lines keep their meaning, tokens may contain ``:``, ``[admin]``
marks admin tokens, and a file that cannot be used is refused naming the line only.

Reloading: a token revoked in a Secret volume (the kubelet swaps a ``..data`` symlink)
stops working a second later without a restart; the file is looked at no more than once
a second; a new version that cannot be used keeps the old tokens and logs why, without
any token; at startup an unusable file is a configuration error.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_runtime.app import load_tokens
from agent_runtime.clock import ManualClock
from agent_runtime.errors import ConfigError
from agent_runtime.tokens import Caller, TokenFileError, TokenTable
from tests.support.runtime import MakeClient, MountedVolume, make_settings


def client_of(table: TokenTable, token: str) -> str | None:
    caller = table.caller_for(token)
    return None if caller is None else caller.client


def test_todays_lines_keep_their_meaning() -> None:
    table = TokenTable.parse("# callers\nalice:tok-alice\n\nbare-token\n:escaped\nempty:\n")
    assert table.caller_for("tok-alice") == Caller("alice")
    assert str(client_of(table, "bare-token")).startswith("token-")
    assert str(client_of(table, "escaped")).startswith("token-")
    assert len(table) == 3  # "empty:" has no token and is skipped, as before


def test_a_token_may_contain_colons() -> None:
    table = TokenTable.parse("alice:part-1:part-2\n:abc:def\nno spaces here:x\n")
    assert table.caller_for("part-1:part-2") == Caller("alice")
    assert str(client_of(table, "abc:def")).startswith("token-")
    assert str(client_of(table, "no spaces here:x")).startswith("token-")  # not a client id


def test_an_admin_line_marks_the_token_admin() -> None:
    table = TokenTable.parse("[admin] support-team:tok-1\nadmin:tok-2\n")
    assert table.caller_for("tok-1") == Caller("support-team", admin=True)
    assert table.caller_for("tok-2") == Caller("admin")  # a client called "admin", as before


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("alice:a\nanonymous:SECRET\n", "line 2"),
        ("[admin]\n", "line 1"),
        ("alice:SECRET\nbob:SECRET\n", "line 2"),
    ],
)
def test_a_file_it_cannot_use_is_refused_naming_the_line_not_its_text(text: str, line: str) -> None:
    with pytest.raises(TokenFileError, match=line) as raised:
        TokenTable.parse(text)
    assert "SECRET" not in str(raised.value)


class SecretVolume(MountedVolume):
    """The tokens file as a Secret volume mounts it."""

    def __init__(self, root: Path, text: str) -> None:
        super().__init__(root, "tokens", text)


async def status_of(client: TestClient[Any, Any], token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.post("/v1/sessions/s/messages", json={"content": "hi"}, headers=headers)
    return response.status


async def test_a_revoked_token_stops_working_without_a_restart(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock
) -> None:
    volume = SecretVolume(tmp_path, "alice:tok-alice\nbob:tok-bob\n")
    client = await make_client(overrides={"auth_tokens_file": volume.path})
    assert await status_of(client, "tok-alice") == 200
    volume.update("bob:tok-bob\ncarol:tok-carol\n")
    await clock.advance(1.0)
    assert await status_of(client, "tok-alice") == 401
    assert await status_of(client, "tok-carol") == 200
    assert await status_of(client, "tok-bob") == 200


async def test_the_file_is_looked_at_no_more_than_once_a_second(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock
) -> None:
    volume = SecretVolume(tmp_path, "alice:tok-alice\n")
    client = await make_client(overrides={"auth_tokens_file": volume.path})
    await clock.advance(1.0)
    assert await status_of(client, "tok-alice") == 200  # checked now: unchanged
    volume.update("carol:tok-carol\n")
    await clock.advance(0.5)
    assert await status_of(client, "tok-carol") == 401  # not looked at yet
    await clock.advance(0.5)
    assert await status_of(client, "tok-carol") == 200


async def test_an_unusable_new_version_keeps_the_old_tokens_and_logs_why_without_tokens(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock, log_stream: io.StringIO
) -> None:
    volume = SecretVolume(tmp_path, "alice:tok-alice\n")
    client = await make_client(overrides={"auth_tokens_file": volume.path})
    volume.update("carol:tok-carol\nanonymous:tok-reserved\n")
    await clock.advance(1.0)
    assert await status_of(client, "tok-alice") == 200
    assert await status_of(client, "tok-carol") == 401
    errors = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    errors = [line for line in errors if line["level"] == "error"]
    assert [line["reason"] for line in errors] == ["line 2: the client id 'anonymous' is reserved"]
    assert "tok-" not in log_stream.getvalue()


def test_an_unusable_file_at_startup_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("[admin]\n")
    settings = make_settings(tmp_path, auth_tokens_file=tokens)
    with pytest.raises(ConfigError, match="AGENTRY_AUTH_TOKENS_FILE: line 1"):
        load_tokens(settings, ManualClock())

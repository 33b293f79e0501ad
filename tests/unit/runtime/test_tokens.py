"""The tokens file: today's lines keep their meaning, tokens may contain ``:``, ``[admin]``
marks admin tokens, and a file that cannot be used is refused naming the line only."""

from __future__ import annotations

import pytest

from agent_runtime.tokens import Caller, TokenFileError, TokenTable


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

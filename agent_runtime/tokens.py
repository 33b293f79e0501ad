"""Bearer tokens for callers, read from ``AUTH_TOKENS_FILE``.

One token per line; blank lines and ``#`` comments are skipped. A line is

    [admin] client-id:token     the token of client ``client-id`` (``[admin]`` optional)
    :token                      a token without a client id (the token may contain ``:``)
    token                       the same, when what precedes any ``:`` is no client id

A client id is 1-128 letters, digits, ``.``, ``_``, ``@`` or ``-``, starting with a letter
or digit. The line is split on its first ``:`` only when what precedes it is such an id,
so a token may contain ``:``: ``alice:a:b`` is alice's token ``a:b``, and ``:a:b`` is the
token ``a:b`` alone. A token without a client id gets ``token-<digest prefix>`` as its id.
``[admin]`` marks a token that may read and delete any client's sessions (see
docs/security.md). ``anonymous`` is reserved: it names the one client of a runtime
without auth, and the owner of sessions stored before sessions had owners.

Only SHA-256 digests are kept in memory, so a heap dump or a log of this object shows no
token, and errors name line numbers, never a line's text.

``CallerTokensFile`` re-reads the file when it changes (``watchedfile.FileWatch``: one ``stat`` at
most once per ``check_interval`` seconds, on the request that authenticates), so revoking
a token needs no restart. A new version that cannot be used is logged and ignored: the
previous tokens stay in force.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent_runtime.state.model import ANONYMOUS_CLIENT
from agent_runtime.watchedfile import ReloadingFile, read_text

log = logging.getLogger("agent_runtime.tokens")

CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
ADMIN_MARKER = "[admin]"


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the line, never its text."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who presented a valid token: the client id sessions belong to, and admin rights."""

    client: str
    admin: bool = False


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _split_client(line: str, number: int) -> tuple[str, str]:
    """(client id or "", token): split on the first ``:`` only after a valid client id."""
    if line.startswith(":"):
        return "", line[1:].strip()
    prefix, sep, rest = line.partition(":")
    if sep and CLIENT_ID.fullmatch(prefix):
        return prefix, rest.strip()
    if sep:
        log.warning(
            "tokens file line %d: the text before the first ':' is not a client id, so the "
            "whole line is one token; start the line with ':' to say so",
            number,
        )
    return "", line


def _parse_line(line: str, number: int) -> tuple[str, Caller] | None:
    """The token and its caller, or None for a line without a token (skipped, as always)."""
    admin = line.startswith(ADMIN_MARKER)
    if admin:
        line = line[len(ADMIN_MARKER) :].lstrip()
    client, token = _split_client(line, number)
    if not token:
        if admin:
            raise TokenFileError(f"line {number}: an [admin] line needs a token")
        return None
    if client == ANONYMOUS_CLIENT:
        raise TokenFileError(f"line {number}: the client id {ANONYMOUS_CLIENT!r} is reserved")
    return token, Caller(client or f"token-{_digest(token).hex()[:12]}", admin)


class TokenTable:
    """Token digests and the caller each one identifies."""

    def __init__(self, entries: dict[bytes, Caller]) -> None:
        self._entries = entries

    def __repr__(self) -> str:
        return f"TokenTable({len(self._entries)} tokens)"

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        """Read and parse the file; TokenFileError when it cannot be used."""
        return cls.parse(read_text(path, TokenFileError))

    @classmethod
    def parse(cls, text: str) -> TokenTable:
        entries: dict[bytes, Caller] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parsed = _parse_line(line, number)
            if parsed is None:
                continue
            digest = _digest(parsed[0])
            if entries.get(digest, parsed[1]) != parsed[1]:
                raise TokenFileError(f"line {number}: this token is already another client's")
            entries[digest] = parsed[1]
        return cls(entries)

    def caller_for(self, token: str) -> Caller | None:
        """The caller a valid token identifies, else ``None``."""
        # Looking up a digest leaks nothing useful about the token through timing.
        return self._entries.get(_digest(token))


class CallerTokensFile:
    """The tokens file's current table, reloaded when the file changes."""

    def __init__(
        self, path: Path, clock: Callable[[], float], *, check_interval: float = 1.0
    ) -> None:
        """Read the file now; TokenFileError when it cannot be used (a startup error)."""
        self._file = ReloadingFile(
            path,
            TokenTable.from_file,
            clock,
            log=log,
            what="tokens",
            summary=lambda table: {"tokens": len(table)},
            check_interval=check_interval,
        )

    def __repr__(self) -> str:
        return f"CallerTokensFile({self._file.path}, {self._file.value!r})"

    def caller_for(self, token: str) -> Caller | None:
        """The caller a valid token identifies under the file's newest usable version."""
        self._file.reload_if_changed()
        return self._file.value.caller_for(token)

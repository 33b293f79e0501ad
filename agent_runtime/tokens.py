"""Bearer tokens for callers, read from ``AUTH_TOKENS_FILE``.

One token per line, optionally ``client-id:token``; blank lines and ``#`` comments are
skipped. Only SHA-256 digests are kept in memory, so a heap dump or a log of this object
shows no token. A token without a client id gets ``token-<digest prefix>`` as its id.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    def __init__(self, entries: dict[bytes, str]) -> None:
        self._entries = entries

    def __repr__(self) -> str:
        return f"TokenTable({len(self._entries)} tokens)"

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        entries: dict[bytes, str] = {}
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            client, sep, token = line.partition(":")
            if not sep:
                client, token = "", line
            token = token.strip()
            if not token:
                continue
            digest = _digest(token)
            entries[digest] = client.strip() or f"token-{digest.hex()[:12]}"
        return cls(entries)

    def client_for(self, token: str) -> str | None:
        """The client id of a valid token, else ``None``."""
        # Looking up a digest leaks nothing useful about the token through timing.
        return self._entries.get(_digest(token))

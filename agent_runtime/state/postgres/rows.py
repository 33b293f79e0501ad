"""One turn's row: its two messages as JSON, sealed under a context naming the turn.

The associated data (``agentry-aad-v3``) binds namespace, agent, client, session and turn
number, so the database can reorder, copy or move rows but never make one open in another
place: a row copied to another session or renumbered fails authentication, and the
session read fails with ``StateError`` instead of serving someone else's words.
"""

from __future__ import annotations

import json

from agent_runtime.crypto import CryptoError, KeyRing, RecordContext
from agent_runtime.state.codec import dump
from agent_runtime.state.errors import StateError
from agent_runtime.state.model import Message, SessionKey

TURN_ROW_KIND = "pg-turn"
_FIELDS = frozenset({"role", "content", "at"})


class TurnSeal:
    """Seals and opens turn rows for one agent (its namespace and name from `base`)."""

    def __init__(self, keyring: KeyRing, base: RecordContext) -> None:
        self.keyring = keyring
        self._base = base

    def _context(self, owner: SessionKey, turn: int) -> RecordContext:
        return self._base.for_turn(TURN_ROW_KIND, owner.client, owner.session, turn)

    def seal(self, owner: SessionKey, turn: int, messages: tuple[Message, ...]) -> bytes:
        body = dump(messages)
        try:
            return self.keyring.seal(body, self._context(owner, turn))
        except CryptoError as exc:
            raise StateError(f"cannot seal turn {turn}: {exc}") from exc

    def open(self, owner: SessionKey, turn: int, sealed: bytes) -> list[Message]:
        """The turn's messages; StateError when the row does not authenticate here."""
        try:
            raw = self.keyring.open(sealed, self._context(owner, turn))
        except CryptoError as exc:
            raise StateError(
                f"turn {turn} of session {owner.session!r} does not open: {exc}"
            ) from exc
        return _decode(raw, turn)

    def reseal(self, owner: SessionKey, turn: int, sealed: bytes) -> bytes:
        """The same row sealed under the active key (re-encryption after a rotation)."""
        messages = self.open(owner, turn, sealed)
        return self.seal(owner, turn, tuple(messages))


def _decode(raw: bytes, turn: int) -> list[Message]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise StateError(f"turn {turn} is not JSON after it opened") from None
    if not isinstance(value, list) or not all(_is_message(m) for m in value):
        raise StateError(f"turn {turn} does not hold a list of messages")
    return value


def _is_message(value: object) -> bool:
    return (
        isinstance(value, dict)
        and {"role", "content"} <= value.keys() <= _FIELDS
        and all(isinstance(v, str) for v in value.values())
    )

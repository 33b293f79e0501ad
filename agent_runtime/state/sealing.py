"""What every store does alike: number generations and seal records.

Checkpoint generations and journal segments share one sequence (a segment is numbered
after the checkpoint it follows), and every record is sealed under the store's context
with its kind, a sealing failure surfacing as StateError. Each store inherits this so the
rule lives in one place.
"""

from __future__ import annotations

from agent_runtime.crypto import CryptoError, KeyRing, RecordContext
from agent_runtime.state.errors import StateError


class SealedStore:
    """Base of the stores: the key ring, the record context and the number sequence."""

    def __init__(self, keyring: KeyRing, context_base: RecordContext) -> None:
        self._keyring = keyring
        self._base = context_base
        self._next_number = 0
        self._contexts: dict[str, RecordContext] = {}  # per kind, derived once

    def _take_number(self) -> int:
        number = self._next_number
        self._next_number += 1
        return number

    def _seal(self, plaintext: bytes, kind: str) -> bytes:
        try:
            context = self._contexts.get(kind)
            if context is None:
                context = self._contexts[kind] = self._base.with_kind(kind)
            return self._keyring.seal(plaintext, context)
        except CryptoError as exc:
            raise StateError(f"cannot seal {kind}: {exc}") from exc

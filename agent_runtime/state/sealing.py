"""What every store does alike: number generations, seal records, track erasures.

Checkpoint generations and journal segments share one sequence (a segment is numbered
after the checkpoint it follows), and every record is sealed under the store's context
with its kind, a sealing failure surfacing as StateError. Each store inherits this so the
rule lives in one place.

Erasure: a `delete` entry appended before `checkpoint()` is called is, by the ordering
contract, absent from that checkpoint's state; so that checkpoint, once durable, removes
every older generation and journal segment (which may still hold the deleted session)
instead of keeping the usual number of generations. `_note_erasure` and `_take_erasure`
carry that decision from `append` to `checkpoint`, synchronously on both sides.

Position: every store reports how far its durable writes reach (`position`), the value
the heartbeat publishes as the high-water mark; `_advance` moves it after each write.
"""

from __future__ import annotations

from agent_runtime.crypto import CryptoError, KeyRing, RecordContext
from agent_runtime.state.errors import StateError
from agent_runtime.state.model import NO_STATE, JournalEntry, Position, Restored, SessionKey


class SealedStore:
    """Base of the stores: the key ring, the record context and the number sequence."""

    def __init__(self, keyring: KeyRing, context_base: RecordContext) -> None:
        self._keyring = keyring
        self._base = context_base
        self._next_number = 0
        self._contexts: dict[str, RecordContext] = {}  # per kind, derived once
        self._bodies = BodySeal(keyring, context_base)
        self._erasure_pending = False
        self.position = NO_STATE

    def _advance(self, position: Position) -> None:
        """Call once a write is durable: the position never moves back (a checkpoint that
        finishes after appends to its own segment does not undo them)."""
        self.position = max(self.position, position)

    def _note_erasure(self, entry: JournalEntry) -> None:
        """Call synchronously when `append` is called, before any await."""
        if entry.op == "delete":
            self._erasure_pending = True

    def _take_erasure(self) -> bool:
        """Call synchronously when `checkpoint` is called: does it complete an erasure?"""
        pending, self._erasure_pending = self._erasure_pending, False
        return pending

    def _erasure_not_done(self, erase: bool) -> None:
        """A checkpoint that took the erasure did not write: the next one must do it."""
        self._erasure_pending = self._erasure_pending or erase

    def _erasure_replayed(self, restored: Restored) -> None:
        """Deletions replayed at load are erasures no checkpoint has completed yet."""
        self._erasure_pending = restored.deletions_replayed > 0

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


class BodySeal:
    """Seals one session's messages under a context naming its owner (version 2 AAD).

    A checkpoint holds several sessions and cannot name one client in its own associated
    data, so each session's messages inside it are sealed again, bound to (client,
    session). Journal entries of format 2 sealed their turn's messages this way too; they
    are still opened here. Format 3 entries are not: their one envelope already
    authenticates the header that names the owner (docs/state-and-encryption.md).
    """

    def __init__(self, keyring: KeyRing, base: RecordContext) -> None:
        self._keyring = keyring
        self._base = base

    def seal(self, plaintext: bytes, kind: str, owner: SessionKey) -> bytes:
        try:
            return self._keyring.seal(plaintext, self._context(kind, owner))
        except CryptoError as exc:
            raise StateError(f"cannot seal a {kind} body: {exc}") from exc

    def open(self, sealed: bytes, kind: str, owner: SessionKey) -> bytes:
        """Raises DecryptionError (as the records around it do) when it does not open."""
        return self._keyring.open(sealed, self._context(kind, owner))

    def _context(self, kind: str, owner: SessionKey) -> RecordContext:
        return self._base.for_session(kind, owner.client, owner.session)

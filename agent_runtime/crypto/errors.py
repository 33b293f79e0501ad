"""The exceptions of the encryption layer.

One hierarchy so callers (initialization, the state stores, `/readyz`) can catch
`CryptoError` for "anything about keys or envelopes". Messages name files, key ids and
record kinds so an operator knows what to fix; they never contain key bytes or plaintext.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every encryption failure."""


class KeyRingError(CryptoError):
    """The key directory or one of its files is missing or malformed (the message names it)."""


class DecryptionError(CryptoError):
    """An envelope could not be opened: malformed, unknown key id, or failed authentication.

    `key_id` is the id named in the envelope header (None if the header itself is
    unreadable) and `reason` is one of "malformed", "unknown-key", "authentication", so
    the state layer can tell a missing key from corrupt bytes without parsing messages.
    """

    def __init__(self, message: str, *, key_id: str | None, kind: str, reason: str) -> None:
        super().__init__(message)
        self.key_id = key_id
        self.kind = kind
        self.reason = reason

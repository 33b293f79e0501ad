"""The byte layout of a sealed record (version 1), kept apart from the keys that fill it.

    magic b"AGRY" | version (1 byte) | key id length (1 byte) | key id (ASCII) |
    nonce (12 bytes) | AES-256-GCM ciphertext + 16-byte tag

Everything before the ciphertext is the header; it is authenticated as part of the
associated data, so flipping the version or key id breaks the tag. A future version adds
a branch in `parse`; version 1 must stay readable forever (golden files in the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_runtime.crypto.errors import DecryptionError

MAGIC = b"AGRY"
VERSION_1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: the raw header (for the AAD) and its parts."""

    header: bytes
    version: int
    key_id: str
    nonce: bytes
    ciphertext: bytes


def valid_key_id(key_id: str) -> bool:
    """Key ids become file names (`key.<id>`), so they are short and path-safe."""
    return KEY_ID_PATTERN.fullmatch(key_id) is not None


def build_header(key_id: str, nonce: bytes) -> bytes:
    """The version 1 header for a key id and a fresh nonce."""
    raw_id = key_id.encode("ascii")
    return MAGIC + bytes([VERSION_1, len(raw_id)]) + raw_id + nonce


def parse(data: bytes, kind: str = "") -> Envelope:
    """Split an envelope into its parts, or raise DecryptionError(reason="malformed")."""

    def malformed(why: str, key_id: str | None = None) -> DecryptionError:
        return DecryptionError(
            f"record of kind {kind or '?'!r} is not a readable Agentry envelope: {why}",
            key_id=key_id,
            kind=kind,
            reason="malformed",
        )

    if len(data) < len(MAGIC) + 2 or data[: len(MAGIC)] != MAGIC:
        raise malformed("missing AGRY magic")
    version = data[len(MAGIC)]
    if version != VERSION_1:
        raise malformed(f"unsupported envelope version {version}")
    id_len = data[len(MAGIC) + 1]
    id_start = len(MAGIC) + 2
    nonce_start = id_start + id_len
    body_start = nonce_start + NONCE_BYTES
    if id_len == 0 or len(data) < body_start + TAG_BYTES:
        raise malformed("truncated header or ciphertext")
    try:
        key_id = data[id_start:nonce_start].decode("ascii")
    except UnicodeDecodeError:
        raise malformed("key id is not ASCII") from None
    if not valid_key_id(key_id):
        raise malformed("key id has characters outside [A-Za-z0-9._-]")
    return Envelope(
        header=data[:body_start],
        version=version,
        key_id=key_id,
        nonce=data[nonce_start:body_start],
        ciphertext=data[body_start:],
    )

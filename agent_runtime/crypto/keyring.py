"""The key ring: one active key that seals, older keys that still open.

Loaded from a directory laid out like a mounted Kubernetes Secret (`active-key-id` plus
`key.<id>` files holding base64 of 32 bytes). Rotation is adding a key and pointing
`active-key-id` at it: old records still open, new records use the new key, and the state
stores rewrite everything at their next checkpoint.

Nonces are 96 random bits, so NIST SP 800-38D caps one key at 2**32 encryptions. The ring
counts its encryptions per key and refuses beyond the cap. The count lives in memory only:
a restarted process starts again from zero, so the bound holds per process lifetime, not
per key lifetime. At checkpoint and journal rates this is many orders of magnitude away,
and rotating the key resets the budget for real.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_runtime.crypto import envelope
from agent_runtime.crypto.context import RecordContext
from agent_runtime.crypto.errors import CryptoError, DecryptionError, KeyRingError

KEY_BYTES = 32
ACTIVE_KEY_FILE = "active-key-id"
KEY_FILE_PREFIX = "key."
NIST_RANDOM_NONCE_LIMIT = 2**32


class KeyRing:
    """AES-256-GCM keys by id; `seal` uses the active key, `open` any key named in a header."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active_key_id: str,
        *,
        max_encryptions_per_key: int = NIST_RANDOM_NONCE_LIMIT,
    ) -> None:
        for key_id, key in keys.items():
            if not envelope.valid_key_id(key_id):
                pattern = envelope.KEY_ID_PATTERN.pattern
                raise KeyRingError(f"key id {key_id!r} must match {pattern}")
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} must be {KEY_BYTES} bytes, got {len(key)}")
        if active_key_id not in keys:
            raise KeyRingError(f"active key id {active_key_id!r} has no key (have {sorted(keys)})")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active = active_key_id
        self._limit = max_encryptions_per_key
        self._counts: dict[str, int] = dict.fromkeys(keys, 0)
        self._lock = threading.Lock()  # seal() runs in worker threads too

    def __repr__(self) -> str:
        return f"KeyRing(active={self._active!r}, key_ids={self.key_ids!r})"

    @classmethod
    def from_directory(cls, path: Path) -> KeyRing:
        """Read a mounted key Secret; every error names the file at fault."""
        if not path.is_dir():
            raise KeyRingError(f"key directory {path} does not exist or is not a directory")
        active_file = path / ACTIVE_KEY_FILE
        try:
            active = active_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise KeyRingError(f"{active_file} is missing (it names the active key)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyRingError(f"{active_file} is unreadable: {exc.__class__.__name__}") from None
        if not envelope.valid_key_id(active):
            raise KeyRingError(f"{active_file} holds an invalid key id")
        keys: dict[str, bytes] = {}
        for key_file in sorted(path.glob(KEY_FILE_PREFIX + "*")):
            key_id = key_file.name[len(KEY_FILE_PREFIX) :]
            if not envelope.valid_key_id(key_id):
                raise KeyRingError(f"{key_file} has an invalid key id in its name")
            keys[key_id] = _read_key_file(key_file)
        if active not in keys:
            raise KeyRingError(
                f"{path / (KEY_FILE_PREFIX + active)} is missing "
                f"(named by {active_file}; found {sorted(keys) or 'no keys'})"
            )
        return cls(keys, active)

    @classmethod
    def generate_development(cls, path: Path) -> KeyRing:
        """Create a development key ring in `path` (mode 0600 files), or reuse the one there.

        Reusing an existing ring keeps a restarted development runtime able to read the
        state it wrote; only development uses this (KEYS_DIR unset).
        """
        if (path / ACTIVE_KEY_FILE).exists():
            return cls.from_directory(path)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_id = f"dev-{secrets.token_hex(4)}"
        key = secrets.token_bytes(KEY_BYTES)
        _write_private(path / (KEY_FILE_PREFIX + key_id), base64.b64encode(key) + b"\n")
        # Written last: a crash in between leaves no active id pointing at a missing key.
        _write_private(path / ACTIVE_KEY_FILE, key_id.encode("ascii") + b"\n")
        return cls({key_id: key}, key_id)

    @property
    def active_key_id(self) -> str:
        """The id new envelopes are sealed with."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every id this ring can open, sorted."""
        return tuple(sorted(self._ciphers))

    def encryptions(self, key_id: str) -> int:
        """How many envelopes this process has sealed with `key_id`."""
        with self._lock:
            return self._counts.get(key_id, 0)

    def seal(self, plaintext: bytes, context: RecordContext) -> bytes:
        """Encrypt with the active key and a fresh random nonce into a version 1 envelope."""
        with self._lock:
            used = self._counts[self._active]
            if used >= self._limit:
                raise CryptoError(
                    f"key {self._active!r} has sealed {used} records, the limit for random "
                    "96-bit nonces (NIST SP 800-38D); rotate the key"
                )
            self._counts[self._active] = used + 1
        nonce = os.urandom(envelope.NONCE_BYTES)
        header = envelope.build_header(self._active, nonce)
        aad = header + context.associated_data()
        return header + self._ciphers[self._active].encrypt(nonce, plaintext, aad)

    def open(self, envelope_bytes: bytes, context: RecordContext) -> bytes:
        """Authenticate and decrypt, or raise DecryptionError naming key id and record kind."""
        parsed = envelope.parse(envelope_bytes, context.kind)
        cipher = self._ciphers.get(parsed.key_id)
        if cipher is None:
            raise DecryptionError(
                f"record of kind {context.kind!r} is sealed with key id {parsed.key_id!r}, "
                f"which is not in the key ring (have {list(self.key_ids)})",
                key_id=parsed.key_id,
                kind=context.kind,
                reason="unknown-key",
            )
        aad = parsed.header + context.associated_data()
        try:
            return cipher.decrypt(parsed.nonce, parsed.ciphertext, aad)
        except InvalidTag:
            raise DecryptionError(
                f"record of kind {context.kind!r} sealed with key id {parsed.key_id!r} failed "
                "authentication (corrupt, a different key under the same id, or written for "
                "another agent, replica or record kind)",
                key_id=parsed.key_id,
                kind=context.kind,
                reason="authentication",
            ) from None

    @staticmethod
    def key_id_of(envelope_bytes: bytes) -> str:
        """The key id in an envelope's header (no key needed)."""
        return envelope.parse(envelope_bytes).key_id

    def self_test(self) -> None:
        """Seal and open a random record with the active key; raise CryptoError if it fails."""
        context = RecordContext("selftest", "selftest", "selftest", "selftest")
        probe = secrets.token_bytes(32)
        try:
            opened = self.open(self.seal(probe, context), context)
        except CryptoError:
            raise
        except Exception as exc:  # the cryptography backend itself misbehaving
            raise CryptoError(f"encryption self-test failed: {exc.__class__.__name__}") from exc
        if opened != probe:
            raise CryptoError("encryption self-test failed: round trip changed the bytes")


def _read_key_file(key_file: Path) -> bytes:
    try:
        text = key_file.read_bytes().strip()
    except OSError as exc:
        raise KeyRingError(f"{key_file} is unreadable: {exc.__class__.__name__}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{key_file} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyRingError(f"{key_file} must hold base64 of {KEY_BYTES} bytes, got {len(key)}")
    return key


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)

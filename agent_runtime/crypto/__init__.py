"""Encryption at rest for the agent runtime: AES-256-GCM envelopes and the key ring.

The state stores seal every record with `KeyRing.seal` and a `RecordContext` naming the
agent, replica and kind of record; initialization calls `KeyRing.self_test`. The
envelope layout and rotation rules are in docs/state-and-encryption.md.
"""

from agent_runtime.crypto.context import RecordContext
from agent_runtime.crypto.errors import CryptoError, DecryptionError, KeyRingError
from agent_runtime.crypto.keyring import KeyRing

__all__ = ["CryptoError", "DecryptionError", "KeyRing", "KeyRingError", "RecordContext"]

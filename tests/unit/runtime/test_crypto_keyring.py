"""The key ring: loading a mounted key Secret, sealing, opening, rotation and limits.

Checks that errors name the file at fault and never leak key bytes, that a record only
opens for the agent, replica and kind it was sealed for, that old keys keep opening after
rotation, and that the per-key encryption budget is enforced.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from agent_runtime.crypto import (
    CryptoError,
    DecryptionError,
    KeyRing,
    KeyRingError,
    RecordContext,
)

CONTEXT = RecordContext("team-a", "support-bot", "support-bot-0", "checkpoint")


def write_key_dir(path: Path, keys: dict[str, bytes], active: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for key_id, key in keys.items():
        (path / f"key.{key_id}").write_text(base64.b64encode(key).decode() + "\n")
    (path / "active-key-id").write_text(active + "\n")
    return path


def test_a_mounted_key_directory_loads_with_its_active_key(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys", {"k1": b"1" * 32, "k2": b"2" * 32}, "k2")
    ring = KeyRing.from_directory(keys)
    assert ring.active_key_id == "k2"
    assert ring.key_ids == ("k1", "k2")


def test_hidden_secret_volume_entries_are_ignored(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys", {"k1": b"1" * 32}, "k1")
    (keys / "..data").mkdir()
    ring = KeyRing.from_directory(keys)
    assert ring.key_ids == ("k1",)


def test_a_missing_key_directory_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="nowhere"):
        KeyRing.from_directory(tmp_path / "nowhere")


def test_a_missing_active_key_id_file_is_named_in_the_error(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys", {"k1": b"1" * 32}, "k1")
    (keys / "active-key-id").unlink()
    with pytest.raises(KeyRingError, match="active-key-id"):
        KeyRing.from_directory(keys)


def test_an_active_id_without_its_key_file_names_the_missing_file(tmp_path: Path) -> None:
    keys = write_key_dir(tmp_path / "keys", {"k1": b"1" * 32}, "k9")
    with pytest.raises(KeyRingError, match=r"key\.k9"):
        KeyRing.from_directory(keys)


@pytest.mark.parametrize(
    "content",
    [pytest.param(b"not base64!!", id="not-base64"), pytest.param(b"c2hvcnQ=", id="short")],
)
def test_a_malformed_key_file_names_the_file_and_not_its_content(
    tmp_path: Path, content: bytes
) -> None:
    keys = write_key_dir(tmp_path / "keys", {"k1": b"1" * 32}, "k1")
    (keys / "key.k1").write_bytes(content)
    with pytest.raises(KeyRingError) as caught:
        KeyRing.from_directory(keys)
    assert "key.k1" in str(caught.value)
    assert content.decode() not in str(caught.value)


def test_a_sealed_record_opens_with_the_same_context() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    sealed = ring.seal(b"hello", CONTEXT)
    assert ring.open(sealed, CONTEXT) == b"hello"
    assert b"hello" not in sealed


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(RecordContext("team-a", "other", "support-bot-0", "checkpoint"), id="agent"),
        pytest.param(RecordContext("team-a", "support-bot", "other-1", "checkpoint"), id="replica"),
        pytest.param(RecordContext("team-a", "support-bot", "support-bot-0", "journal"), id="kind"),
        pytest.param(RecordContext("b", "support-bot", "support-bot-0", "checkpoint"), id="ns"),
    ],
)
def test_a_record_moved_to_another_owner_or_kind_does_not_open(other: RecordContext) -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    sealed = ring.seal(b"hello", CONTEXT)
    with pytest.raises(DecryptionError) as caught:
        ring.open(sealed, other)
    assert caught.value.reason == "authentication"


def test_field_boundaries_cannot_be_shifted_to_forge_a_context() -> None:
    a = RecordContext("ns", "ab", "c", "checkpoint")
    b = RecordContext("ns", "a", "bc", "checkpoint")
    assert a.associated_data() != b.associated_data()


def test_every_flipped_byte_of_an_envelope_fails_to_open() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    sealed = ring.seal(b"hello world", CONTEXT)
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError):
            ring.open(bytes(tampered), CONTEXT)


def test_sealing_twice_never_repeats_a_nonce() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    envelopes = [ring.seal(b"same", CONTEXT) for _ in range(200)]
    nonces = {e[8:20] for e in envelopes}  # AGRY, version, id length, "k1", then the nonce
    assert len(nonces) == len(envelopes)


def test_after_rotation_old_records_open_and_new_ones_use_the_new_key() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    old = KeyRing({"k1": k1}, "k1").seal(b"old", CONTEXT)
    rotated = KeyRing({"k1": k1, "k2": k2}, "k2")
    assert rotated.open(old, CONTEXT) == b"old"
    fresh = rotated.seal(b"new", CONTEXT)
    assert KeyRing.key_id_of(fresh) == "k2"
    assert KeyRing.key_id_of(old) == "k1"


def test_a_record_under_an_unknown_key_names_the_key_id_and_kind() -> None:
    sealed = KeyRing({"gone": os.urandom(32)}, "gone").seal(b"x", CONTEXT)
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    with pytest.raises(DecryptionError, match=r"'gone'.*not in the key ring") as caught:
        ring.open(sealed, CONTEXT)
    assert caught.value.reason == "unknown-key"
    assert caught.value.kind == "checkpoint"


def test_a_wrong_key_under_the_same_id_fails_authentication_naming_id_and_kind() -> None:
    sealed = KeyRing({"k1": os.urandom(32)}, "k1").seal(b"x", CONTEXT)
    with pytest.raises(DecryptionError, match=r"kind 'checkpoint'.*'k1'") as caught:
        KeyRing({"k1": os.urandom(32)}, "k1").open(sealed, CONTEXT)
    assert caught.value.reason == "authentication"


def test_bytes_that_are_not_an_envelope_are_reported_as_malformed() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    with pytest.raises(DecryptionError) as caught:
        ring.open(b'{"plain": "json"}', CONTEXT)
    assert caught.value.reason == "malformed"


def test_the_key_refuses_to_seal_past_its_encryption_budget() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1", max_encryptions_per_key=3)
    for _ in range(3):
        ring.seal(b"x", CONTEXT)
    with pytest.raises(CryptoError, match="NIST SP 800-38D"):
        ring.seal(b"x", CONTEXT)
    assert ring.encryptions("k1") == 3


def test_the_default_budget_is_the_nist_limit_for_random_nonces() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1")
    assert ring._limit == 2**32


def test_self_test_passes_with_a_working_key() -> None:
    KeyRing({"k1": os.urandom(32)}, "k1").self_test()


def test_self_test_reports_a_key_that_cannot_seal() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, "k1", max_encryptions_per_key=0)
    with pytest.raises(CryptoError):
        ring.self_test()


def test_a_development_key_ring_is_created_private_and_reused(tmp_path: Path) -> None:
    keys = tmp_path / "state" / "keys"
    ring = KeyRing.generate_development(keys)
    assert ring.active_key_id.startswith("dev-")
    assert len(ring.active_key_id) == len("dev-") + 8
    for file in keys.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    sealed = ring.seal(b"keep me", CONTEXT)
    again = KeyRing.generate_development(keys)
    assert again.active_key_id == ring.active_key_id
    assert again.open(sealed, CONTEXT) == b"keep me"


def test_the_key_ring_repr_shows_ids_but_no_key_bytes() -> None:
    key = os.urandom(32)
    text = repr(KeyRing({"k1": key}, "k1"))
    assert "k1" in text
    assert base64.b64encode(key).decode() not in text
    assert key.hex() not in text

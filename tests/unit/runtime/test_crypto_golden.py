"""Envelopes written by earlier versions still open (see golden/README.md).

A runtime that cannot read the state its previous release wrote loses every agent's
memory on upgrade (Dapr's #7512). These files were sealed once and are never regenerated.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from agent_runtime.crypto import KeyRing, RecordContext

GOLDEN = Path(__file__).parent / "golden"


def test_a_version_1_golden_envelope_still_opens() -> None:
    meta = json.loads((GOLDEN / "envelope-v1.json").read_text())
    key = base64.b64decode((GOLDEN / "envelope-v1.key").read_text().strip())
    ring = KeyRing({meta["key_id"]: key}, meta["key_id"])
    context = RecordContext(**meta["context"])
    sealed = (GOLDEN / "envelope-v1.agry").read_bytes()
    assert ring.open(sealed, context) == meta["plaintext_utf8"].encode()


def test_the_version_1_header_layout_is_unchanged() -> None:
    sealed = (GOLDEN / "envelope-v1.agry").read_bytes()
    assert sealed[:4] == b"AGRY"
    assert sealed[4] == 1
    id_len = sealed[5]
    assert sealed[6 : 6 + id_len] == b"golden-1"
    assert KeyRing.key_id_of(sealed) == "golden-1"
    nonce_and_tag = 12 + 16
    assert len(sealed) > 6 + id_len + nonce_and_tag

"""Envelopes written by earlier versions still open (see golden/README.md).

A runtime that cannot read the state its previous release wrote loses every agent's
memory on upgrade (Dapr's #7512). These files were sealed once and are never regenerated.
Also checked: the version 2 context binds a session body to its client and session, and
checkpoints written before sessions had owners restore as the anonymous client's, a
journal segment's link to the position before it is read from stored bytes, and a volume
with format 2 journal records and format 3 records after them (upgraded in place)
restores both.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.crypto import DecryptionError, KeyRing, RecordContext
from agent_runtime.state import ANONYMOUS_CLIENT, Restored, SessionKey, StateError, framing
from agent_runtime.state.codec import TURN_BODY_KIND
from agent_runtime.state.model import Position
from agent_runtime.state.postgres.rows import TurnSeal
from agent_runtime.state.recovery import JOURNAL_KIND, StoredCheckpoint, StoredSegment, recover
from agent_runtime.state.sealing import BodySeal

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


def golden_ring_v2() -> KeyRing:
    key = base64.b64decode((GOLDEN / "aad-v2.key").read_text().strip())
    return KeyRing({"golden-2": key}, "golden-2")


def test_a_session_body_sealed_under_the_version_2_context_still_opens() -> None:
    meta = json.loads((GOLDEN / "aad-v2.json").read_text())
    sealed = (GOLDEN / "aad-v2.agry").read_bytes()
    context = RecordContext(**meta["context"])
    assert golden_ring_v2().open(sealed, context) == meta["plaintext_utf8"].encode()


def test_the_version_2_context_binds_the_client_and_the_session() -> None:
    meta = json.loads((GOLDEN / "aad-v2.json").read_text())
    sealed = (GOLDEN / "aad-v2.agry").read_bytes()
    for change in ({"client": "bob"}, {"session": "other"}, {"client": None, "session": None}):
        context = RecordContext(**{**meta["context"], **change})
        with pytest.raises(DecryptionError):
            golden_ring_v2().open(sealed, context)


def restore_golden(name: str) -> Restored:
    meta = json.loads((GOLDEN / f"{name}.json").read_text())
    base = RecordContext(**{**meta["context"], "kind": ""})
    stored = StoredCheckpoint(meta["generation"], name, (GOLDEN / f"{name}.agry").read_bytes())
    return recover(golden_ring_v2(), base, [stored], []).restored


def test_a_format_1_checkpoint_restores_as_the_anonymous_clients_sessions() -> None:
    restored = restore_golden("checkpoint-format1")
    assert restored.state == {
        SessionKey(ANONYMOUS_CLIENT, "old-session"): [
            {"role": "user", "content": "written before owners"}
        ]
    }


def test_a_format_2_checkpoint_restores_each_session_with_its_owner() -> None:
    meta = json.loads((GOLDEN / "checkpoint-format2.json").read_text())
    restored = restore_golden("checkpoint-format2")
    expected = {SessionKey(s["client"], s["session"]): s["messages"] for s in meta["sessions"]}
    assert restored.state == expected


GOLDEN_BASE = RecordContext("golden-ns", "golden-agent", "golden-agent-0", "")


def golden_segment(name: str = "journal-format2") -> StoredSegment:
    meta = json.loads((GOLDEN / f"{name}.json").read_text())
    records, torn = framing.split((GOLDEN / f"{name}.agry").read_bytes())
    assert torn == 0
    return StoredSegment(meta["segment"], f"{name}.agry", records)


def golden_checkpoint() -> StoredCheckpoint:
    return StoredCheckpoint(
        7, "checkpoint-format2", (GOLDEN / "checkpoint-format2.agry").read_bytes()
    )


def test_a_linked_journal_segment_replays_on_top_of_its_checkpoint() -> None:
    base = GOLDEN_BASE
    checkpoint = golden_checkpoint()
    restored = recover(golden_ring_v2(), base, [checkpoint], [golden_segment()]).restored
    assert restored.state == {
        SessionKey("alice", "s1"): [
            {"role": "user", "content": "alice's turn"},
            {"role": "user", "content": "alice again"},
        ]
    }
    assert restored.position == Position(8, 2)
    assert restored.missing is None


def test_a_linked_journal_segment_without_its_checkpoint_reports_it_missing() -> None:
    restored = recover(golden_ring_v2(), GOLDEN_BASE, [], [golden_segment()]).restored
    assert restored.missing is not None
    assert "follows segment 7 (0 records), but replay reached only no state" in restored.missing


def test_format_3_journal_records_replay_after_format_2_ones_on_an_upgraded_volume() -> None:
    segments = [golden_segment(), golden_segment("journal-format3")]
    restored = recover(golden_ring_v2(), GOLDEN_BASE, [golden_checkpoint()], segments).restored
    meta = json.loads((GOLDEN / "journal-format3.json").read_text())
    alices, bobs = (entry["messages"] for entry in meta["entries"])
    assert restored.state == {
        SessionKey("alice", "s1"): [
            {"role": "user", "content": "alice's turn"},
            {"role": "user", "content": "alice again"},
            *alices,
        ],
        SessionKey("bob", "s2"): bobs,
    }
    assert (restored.position, restored.missing, restored.warnings) == (Position(9, 2), None, [])


def replay_bobs_forged_append(body: Callable[[bytes], bytes]) -> Restored:
    """Golden segment 8 with bob's delete rewritten, with the key, into an append whose
    body is `body(alice's sealed body)`, replayed on the golden checkpoint."""
    ring, context = golden_ring_v2(), GOLDEN_BASE.with_kind(JOURNAL_KIND)
    segment = golden_segment()
    alices, _ = framing.split(ring.open(segment.records[0], context))
    bobs, _ = framing.split(ring.open(segment.records[1], context))
    header = json.loads(bobs[0]) | {"op": "append"}
    forged = framing.frame(json.dumps(header).encode()) + framing.frame(body(alices[1]))
    records = [segment.records[0], ring.seal(forged, context)]
    stored = StoredSegment(segment.number, segment.name, records)
    return recover(ring, GOLDEN_BASE, [golden_checkpoint()], [stored]).restored


def test_a_format_2_body_moved_under_another_owner_still_fails_even_re_sealed() -> None:
    """Format 2 records are read with their inner seal checked: alice's sealed body under
    bob's header stops replay there; the same words sealed for bob replay (the control)."""
    bodies = BodySeal(golden_ring_v2(), GOLDEN_BASE)
    alice, bob = SessionKey("alice", "s1"), SessionKey("bob", "s1")

    def for_bob(sealed: bytes) -> bytes:
        return bodies.seal(bodies.open(sealed, TURN_BODY_KIND, alice), TURN_BODY_KIND, bob)

    control = replay_bobs_forged_append(for_bob)
    assert control.warnings == []
    assert control.state[bob][-1] == {"role": "user", "content": "alice again"}

    restored = replay_bobs_forged_append(lambda sealed: sealed)
    assert "record 1 failed to open" in " ".join(restored.warnings)
    assert restored.state[bob] == [{"role": "user", "content": "bob's turn"}]


def golden_turn_row() -> tuple[dict[str, Any], KeyRing, bytes]:
    meta = json.loads((GOLDEN / "aad-v3.json").read_text())
    key = base64.b64decode((GOLDEN / "aad-v3.key").read_text().strip())
    return (
        meta,
        KeyRing({meta["key_id"]: key}, meta["key_id"]),
        (GOLDEN / "aad-v3.agry").read_bytes(),
    )


def test_a_postgres_turn_row_sealed_under_the_version_3_context_still_opens() -> None:
    meta, ring, sealed = golden_turn_row()
    # Any replica reads it: the context of another pod opens the row as well.
    seal = TurnSeal(ring, RecordContext("golden-ns", "golden-agent", "golden-agent-7", ""))
    assert seal.open(SessionKey("alice", "alice-private"), 3, sealed) == meta["messages"]
    assert ring.open(sealed, RecordContext(**meta["context"]))


@pytest.mark.parametrize(
    ("client", "session", "turn"),
    [("bob", "alice-private", 3), ("alice", "other", 3), ("alice", "alice-private", 2)],
)
def test_the_version_3_context_binds_client_session_and_turn(
    client: str, session: str, turn: int
) -> None:
    _, ring, sealed = golden_turn_row()
    seal = TurnSeal(ring, RecordContext("golden-ns", "golden-agent", "", ""))
    with pytest.raises(StateError, match="does not open"):
        seal.open(SessionKey(client, session), turn, sealed)

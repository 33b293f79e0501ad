"""Sessions belong to the client that created them (issue 15), on the memory and pvc
backends (the configmap backend's tests are in test_state_configmap.py).

Checks: bob's GET and DELETE of alice's session answer like a missing session, alice
continues at turn 2 and bob's POST to the same id starts his own session; ownership
survives a restart (checkpoint and journal replay); without auth every caller is the one
anonymous client; a session body sealed in a checkpoint does not open as another client's,
a journal record copied into another's place does not replay, a turn costs one encryption; an
admin token reads and deletes any session and its log line names no content; after
DELETE and the next checkpoint no file of the pvc backend holds the deleted session's
sealed records.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agent_runtime.app import record_context
from agent_runtime.crypto import DecryptionError, KeyRing, RecordContext
from agent_runtime.services import SERVICES
from agent_runtime.state import JournalEntry, PvcStore, SessionKey, codec, framing
from agent_runtime.state.recovery import CHECKPOINT_KIND, JOURNAL_KIND
from agent_runtime.state.sealing import BodySeal
from tests.support.runtime import MakeClient, make_settings
from tests.support.tenancy import (
    ADMIN,
    ALICE,
    BOB,
    PRIVATE,
    SECRET,
    contents,
    ownership_is_as_the_exchange_left_it,
    play_the_issue_exchange,
    post,
    write_tokens,
)

ALICES = SessionKey("alice", "alice-private")
BASE = RecordContext("team-a", "demo", "demo-0", "")


async def test_bob_cannot_read_or_delete_alices_session_and_his_post_starts_his_own(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    await play_the_issue_exchange(client)
    await ownership_is_as_the_exchange_left_it(client)


async def test_ownership_survives_a_restart_on_the_pvc_backend(
    make_client: MakeClient, tmp_path: Path, keyring: KeyRing
) -> None:
    settings = make_settings(tmp_path, auth_tokens_file=write_tokens(tmp_path))

    def pvc() -> PvcStore:
        return PvcStore(tmp_path / "state", keyring, record_context(settings))

    first = await make_client(settings=settings, store=pvc())
    await play_the_issue_exchange(first)
    await first.close()  # the final checkpoint holds both owners' sessions
    second = await make_client(settings=settings, store=pvc())
    await ownership_is_as_the_exchange_left_it(second)


async def alice_then_bob_append_to_session_s(
    directory: Path, keyring: KeyRing, *more: JournalEntry
) -> None:
    """Journal segment 0 of a pvc store: alice's then bob's turn in their `s`, then `more`."""
    store = PvcStore(directory, keyring, BASE)
    await store.load()
    for client in ("alice", "bob"):
        message = {"role": "user", "content": f"{client}'s words"}
        await store.append(JournalEntry("append", "s", (message,), client=client))
    for entry in more:
        await store.append(entry)
    await store.close()


async def test_the_journal_replays_two_clients_sessions_of_one_id_apart(
    tmp_path: Path, keyring: KeyRing
) -> None:
    await alice_then_bob_append_to_session_s(
        tmp_path, keyring, JournalEntry("delete", "s", client="bob")
    )
    restored = await PvcStore(tmp_path, keyring, BASE).load()
    assert restored.state == {
        SessionKey("alice", "s"): [{"role": "user", "content": "alice's words"}]
    }


async def test_without_auth_every_caller_is_the_one_anonymous_client(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    first = {"X-Client-ID": "one"}
    await client.post("/v1/sessions/shared/messages", json={"content": "hi"}, headers=first)
    response = await client.get("/v1/sessions/shared", headers={"X-Client-ID": "two"})
    assert response.status == 200


def test_a_session_body_does_not_open_as_another_clients() -> None:
    ring = KeyRing({"k1": bytes(range(32))}, "k1")
    bodies = BodySeal(ring, BASE)
    sealed = bodies.seal(b"[]", codec.CHECKPOINT_BODY_KIND, ALICES)
    assert bodies.open(sealed, codec.CHECKPOINT_BODY_KIND, ALICES) == b"[]"
    with pytest.raises(DecryptionError):
        bodies.open(sealed, codec.CHECKPOINT_BODY_KIND, SessionKey("bob", "alice-private"))


async def test_a_record_copied_from_alices_session_into_bobs_does_not_open(
    tmp_path: Path, keyring: KeyRing
) -> None:
    """The envelope authenticates the header that names the owner: alice's sealed record
    put in bob's place stops replay there (it claims its own place). Rewriting the owner
    needs the key, which can seal anything; the format 2 inner seal never stopped that
    (test_crypto_golden.py keeps checking it on format 2 records)."""
    await alice_then_bob_append_to_session_s(tmp_path, keyring)
    journal = tmp_path / "journal-00000000.agry"
    records, _ = framing.split(journal.read_bytes())
    records[1] = records[0]
    journal.write_bytes(b"".join(framing.frame(r) for r in records))

    restored = await PvcStore(tmp_path, keyring, BASE).load()

    assert restored.state == {
        SessionKey("alice", "s"): [{"role": "user", "content": "alice's words"}]
    }
    assert "record 1 failed to open" in " ".join(restored.warnings)


async def test_a_turn_costs_one_encryption_of_the_keys_budget(
    tmp_path: Path, keyring: KeyRing
) -> None:
    """One seal per journal record (format 3): the per-key limit counts turns, not twice."""
    await alice_then_bob_append_to_session_s(tmp_path, keyring)
    assert keyring.encryptions(keyring.active_key_id) == 2
    context = BASE.with_kind(JOURNAL_KIND)
    records, _ = framing.split((tmp_path / "journal-00000000.agry").read_bytes())
    parts, _ = framing.split(keyring.open(records[0], context))
    assert json.loads(parts[0])["v"] == codec.JOURNAL_FORMAT_VERSION
    assert json.loads(parts[1]) == [{"role": "user", "content": "alice's words"}]


async def test_an_admin_reads_and_deletes_any_session_and_its_log_names_no_content(
    make_client: MakeClient, tmp_path: Path, log_stream: io.StringIO
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    await play_the_issue_exchange(client)
    assert (await contents(client, ADMIN, "?client=alice"))[0] == SECRET
    assert (await contents(client, ADMIN, "?client=bob"))[0] == "hello from bob"
    assert (await client.delete(PRIVATE + "?client=bob", headers=ADMIN)).status == 204
    assert (await client.get(PRIVATE, headers=BOB)).status == 404
    assert (await client.get(PRIVATE + "?client=bob", headers=ALICE)).status == 403

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    admin = [line for line in lines if line["message"] == "admin access"]
    assert [(a["client_id"], a["owner"], a["action"]) for a in admin] == [
        ("support-team", "alice", "GET"),
        ("support-team", "bob", "GET"),
        ("support-team", "bob", "DELETE"),
    ]
    assert all(a["session_id"] == "alice-private" for a in admin)
    assert not any(word in log_stream.getvalue() for word in ("hunter2", "hello from bob"))


async def test_an_admin_may_not_write_into_another_clients_session(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    response = await client.post(
        PRIVATE + "/messages?client=alice", json={"content": "x"}, headers=ADMIN
    )
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "client"


def pvc_records_holding(directory: Path, keyring: KeyRing, owner: SessionKey) -> list[bytes]:
    """Every sealed checkpoint and journal record in `directory` that holds `owner`'s session."""
    bodies = BodySeal(keyring, BASE)
    found: list[bytes] = []
    for path in sorted(directory.glob("checkpoint-*.agry")):
        raw = keyring.open(path.read_bytes(), BASE.with_kind(CHECKPOINT_KIND))
        if owner in codec.decode_checkpoint(raw, bodies).state:
            found.append(path.read_bytes())
    for path in sorted(directory.glob("journal-*.agry")):
        segment = int(path.name[len("journal-") : -len(".agry")])
        records, _ = framing.split(path.read_bytes())
        for index, record in enumerate(records):
            raw = keyring.open(record, BASE.with_kind(JOURNAL_KIND))
            if codec.decode_entry(raw, segment, index, bodies).key == owner:
                found.append(record)
    return found


async def test_after_delete_and_the_next_checkpoint_no_pvc_file_holds_the_session(
    make_client: MakeClient, tmp_path: Path, keyring: KeyRing
) -> None:
    settings = make_settings(tmp_path, auth_tokens_file=write_tokens(tmp_path))
    directory = tmp_path / "state"
    client = await make_client(settings=settings, store=PvcStore(directory, keyring, BASE))
    sessions = client.app[SERVICES].sessions
    for turn in range(3):  # three generations and their journals hold alice's session
        await post(client, ALICE, f"{SECRET} #{turn}")
        await sessions.checkpoint()
    await post(client, ALICE, "still in the journal")
    await post(client, BOB, "bob stays")
    sealed = pvc_records_holding(directory, keyring, ALICES)
    every_byte = b"".join(p.read_bytes() for p in directory.iterdir())
    assert len(sealed) >= 6
    assert all(record in every_byte for record in sealed)

    assert (await client.delete(PRIVATE, headers=ALICE)).status == 204
    await sessions.checkpoint()

    every_byte = b"".join(p.read_bytes() for p in directory.iterdir())
    assert not [record for record in sealed if record in every_byte]
    await client.close()
    restored = await PvcStore(directory, keyring, BASE).load()
    assert list(restored.state) == [SessionKey("bob", "alice-private")]


async def test_a_token_sent_through_the_api_server_proxy_header_identifies_the_caller(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """kube-apiserver drops Authorization, so `kubectl agent invoke` uses this header."""
    client = await make_client(overrides={"auth_tokens_file": write_tokens(tmp_path)})
    proxied = {"X-Agentry-Authorization": "Bearer tok-alice-123"}
    assert await post(client, proxied, SECRET) == 1
    assert (await contents(client, ALICE))[0] == SECRET

"""The configmap store against kmock's Kubernetes emulator.

`ApiServer` below adds what the real API server does and the emulator does not (it
serves no PUT and keeps no resourceVersion): PUT replaces the whole object, every write
bumps `resourceVersion`, and a stale one is answered 409. Checks that acknowledged
appends and checkpoints are restored by a new process, that chunks stay under the 1 MiB
object limit and alternate between slots behind one commit point, that conflicts are
retried a bounded number of times, that another writer or a wrong key stops all writes
with the objects left untouched, that a damaged checkpoint falls back a generation, that
the journal compacts itself, that no message text reaches the API server, and that at
its chunk budget a runtime on this store warns from 80%, answers 507 and fails readiness,
still takes deletes, and recovers once a checkpoint fits. Sessions belong to their
clients across a restart, and after a DELETE and the next checkpoint no ConfigMap holds
the deleted session's sealed bytes.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import aiohttp.web_server
import attrs
import kmock
import pytest

from agent_runtime.app import record_context
from agent_runtime.config import Settings
from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.kubeapi import KubeClient
from agent_runtime.services import SERVICES
from agent_runtime.state import (
    ConfigMapStore,
    JournalEntry,
    MemoryState,
    SessionKey,
    StateError,
    StateUnreadable,
    codec,
)
from agent_runtime.state.sealing import BodySeal
from tests.support.runtime import MakeClient, anon, make_settings, readiness_of_state
from tests.support.state import (
    check_an_unencodable_entry_fails_alone,
    check_the_loop_ran_between_slices,
    sessions_of,
    watching_checkpoint_work,
)
from tests.support.tenancy import (
    ALICE,
    BOB,
    PRIVATE,
    SECRET,
    ownership_is_as_the_exchange_left_it,
    play_the_issue_exchange,
    post,
    write_tokens,
)

NS = "team-a"
REPLICA = "support-bot-0"
BASE = RecordContext(NS, "support-bot", REPLICA, "")
KEY1 = bytes(range(32))
KEY2 = bytes(range(32, 64))


def plain(value: Any) -> Any:
    """The emulator stores nested kmock mappings; tests and responses want plain JSON."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """The emulator plus PUT, resourceVersion and 409 Conflict, as the API server does."""

    version: int = 0
    foreign_edits: int = 0  # the next N PUTs find the object touched by someone else
    late_answers: int = 0  # the next N PUTs are applied, but answered after 1 s
    puts: list[str] = attrs.Factory(list)

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.method == kmock.method.POST:
            request.data.setdefault("metadata", {})["resourceVersion"] = self._bump()
        if request.resource is not None and request.method == kmock.method.PUT and request.name:
            answer = self._put(request)
            if self.late_answers:
                self.late_answers -= 1
                await asyncio.sleep(1)
            return answer
        return await super()._handle(request)

    def _put(self, request: Any) -> aiohttp.web.StreamResponse:
        self.puts.append(request.name)
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)
        stored = self.objects[key]
        if self.foreign_edits:
            self.foreign_edits -= 1
            edited = plain(stored)
            edited["metadata"]["resourceVersion"] = self._bump()
            edited["metadata"].setdefault("annotations", {})["someone/else"] = "touched"
            stored.history.append(edited)
        sent = request.data.get("metadata", {}).get("resourceVersion")
        if sent is not None and sent != stored["metadata"]["resourceVersion"]:
            return aiohttp.web.json_response({"kind": "Status", "code": 409}, status=409)
        new = plain(request.data)
        new["metadata"]["resourceVersion"] = self._bump()
        stored.history.append(new)
        return aiohttp.web.json_response(new)


class LargeBodyServer(aiohttp.test_utils.RawTestServer):
    """Accepts request bodies up to 3 MiB like kube-apiserver; aiohttp's default is 1 MiB,
    less than a 900 KiB chunk once base64-encoded in JSON."""

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> aiohttp.web.ServerRunner:
        def make_request(*args: Any) -> aiohttp.web.BaseRequest:
            return aiohttp.web.BaseRequest(*args, self._loop, client_max_size=3 * 1024 * 1024)

        server = aiohttp.web_server.Server(
            self._handler, loop=self._loop, debug=debug, request_factory=make_request, **kwargs
        )
        return aiohttp.web.ServerRunner(server, debug=debug, **kwargs)


pytestmark = pytest.mark.kmock(cls=ApiServer, server_cls=LargeBodyServer)


@pytest.fixture
async def api(kmock: ApiServer) -> AsyncIterator[KubeClient]:
    api_client = KubeClient.for_url(str(kmock.url))
    yield api_client
    await api_client.close()


def ring(**keys: bytes) -> KeyRing:
    return KeyRing(keys, next(reversed(keys)))


def say(session: str, text: str) -> JournalEntry:
    return JournalEntry("append", session, ({"role": "user", "content": text},))


def objects(server: ApiServer) -> dict[str, dict[str, Any]]:
    return {name: plain(obj) for (_, _, name), obj in server.objects.items() if not obj.deleted}


def commit_of(server: ApiServer) -> dict[str, Any]:
    return json.loads(objects(server)[f"{REPLICA}-state"]["data"]["commit"])


async def store(api: KubeClient, keyring: KeyRing | None = None, **kw: Any) -> ConfigMapStore:
    made = ConfigMapStore(api, NS, REPLICA, keyring or ring(k1=KEY1), BASE, **kw)
    await made.load()
    return made


async def test_appends_and_checkpoints_are_restored_by_the_next_process(
    api: KubeClient, kmock: ApiServer
) -> None:
    first = await store(api)
    await first.append(say("s", "one"))
    info = await first.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    await first.append(say("s", "two"))

    second = ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE)
    restored = await second.load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["one", "two"]
    assert restored.journal_entries_replayed == 1
    assert restored.checkpoint is not None
    assert restored.checkpoint.generation == info.generation
    assert restored.checkpoint.key_id == "k1"
    assert second.describe() == f"configmap:{NS}/{REPLICA}-state"


async def test_state_objects_carry_the_agent_labels_and_the_architecture_names(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api)
    await s.checkpoint({anon("s"): [{"role": "user", "content": "x"}]})
    found = objects(kmock)
    assert set(found) == {f"{REPLICA}-state", f"{REPLICA}-state-a0"}
    for obj in found.values():
        assert obj["metadata"]["labels"]["agentry.dev/agent"] == "support-bot"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agentry"
        # What keeps it out of the operator's child watches (operator/watching.py).
        assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "memory"


async def test_checkpoints_alternate_slots_behind_one_commit_point(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api)
    await s.append(say("s", "one"))
    first = await s.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    assert commit_of(kmock)["current"]["slot"] == "a"
    await s.append(say("s", "two"))
    second = await s.checkpoint(
        {anon("s"): [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]}
    )
    commit = commit_of(kmock)
    assert commit["current"]["slot"] == "b"
    assert commit["current"]["generation"] == second.generation
    assert commit["previous"]["generation"] == first.generation
    assert len(commit["current"]["sha256"]) == 64
    journal = objects(kmock)[f"{REPLICA}-state"].get("binaryData", {})
    assert journal == {}  # everything is in the checkpoint now


async def test_a_large_state_is_chunked_under_the_object_size_limit(
    api: KubeClient, kmock: ApiServer
) -> None:
    state: MemoryState = {
        anon(f"s{i}"): [{"role": "user", "content": f"{i:06d}" * 4000}] for i in range(100)
    }  # about 2.4 MB of messages
    s = await store(api)
    info = await s.checkpoint(state)
    assert info.bytes > 2 * 1024 * 1024
    commit = commit_of(kmock)
    assert commit["current"]["chunks"] == 3
    for name, obj in objects(kmock).items():
        size = sum(len(base64.b64decode(v)) for v in obj.get("binaryData", {}).values())
        size += sum(len(v) for v in obj.get("data", {}).values())
        assert size < 1024 * 1024, name
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert restored.state == state


async def test_state_beyond_eight_chunks_fails_naming_the_pvc_backend(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api, chunk_bytes=1024)
    state: MemoryState = {anon("s"): [{"role": "user", "content": "x" * 20_000}]}
    with pytest.raises(StateError, match="pvc backend"):
        await s.checkpoint(state)
    assert f"{REPLICA}-state" not in objects(kmock)  # nothing committed


async def test_no_message_text_reaches_the_api_server(api: KubeClient, kmock: ApiServer) -> None:
    secret = "the launch code is TANGERINE-4417"
    s = await store(api)
    await s.append(JournalEntry("append", "session-XYZZY", ({"role": "user", "content": secret},)))
    await s.checkpoint({anon("session-XYZZY"): [{"role": "user", "content": secret}]})
    await s.append(say("session-XYZZY", secret))
    dumped = json.dumps(objects(kmock))
    decoded = b"".join(
        base64.b64decode(v)
        for obj in objects(kmock).values()
        for v in obj.get("binaryData", {}).values()
    )
    for needle in (secret, "TANGERINE", "XYZZY"):
        assert needle not in dumped
        assert needle.encode() not in decoded


async def test_an_update_conflict_is_retried_after_rereading(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api)
    await s.append(say("s", "one"))
    kmock.foreign_edits = 2  # someone annotates the commit point twice
    await s.append(say("s", "two"))
    obj = objects(kmock)[f"{REPLICA}-state"]
    assert obj["metadata"]["annotations"]["someone/else"] == "touched"  # kept
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["one", "two"]


async def test_endless_conflicts_give_up_with_a_state_error(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api, conflict_retries=3)
    await s.append(say("s", "one"))
    kmock.foreign_edits = 100
    with pytest.raises(StateError, match="conflicted 4 times"):
        await s.append(say("s", "two"))


async def test_a_write_answered_after_the_deadline_is_not_taken_for_another_writer(
    api: KubeClient, kmock: ApiServer
) -> None:
    """Issue 12's network cut: a PUT sent as the pod lost the API server landed when the
    path came back; the store took its own late write for another writer's and refused
    every write until a restart."""
    s = await store(api, request_timeout_seconds=0.3)
    await s.append(say("s", "one"))
    kmock.late_answers = 1
    with pytest.raises(StateError, match=r"did not answer within 0\.3s"):
        await s.append(say("s", "refused, though it landed"))
    await s.append(say("s", "two"))
    await s.append(say("s", "three"))
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["one", "two", "three"]


async def test_another_writer_of_the_same_replica_stops_all_writes(
    api: KubeClient, kmock: ApiServer
) -> None:
    mine = await store(api)
    await mine.append(say("s", "mine"))
    theirs = await store(api)
    await theirs.append(say("s", "theirs"))
    with pytest.raises(StateError, match="another writer"):
        await mine.append(say("s", "mine again"))
    with pytest.raises(StateError, match="another writer"):
        await mine.probe()


@pytest.mark.parametrize(
    "other_ring",
    [
        pytest.param(KeyRing({"k9": KEY2}, "k9"), id="missing-key"),
        pytest.param(KeyRing({"k1": KEY2}, "k1"), id="wrong-key-same-id"),
    ],
)
async def test_a_wrong_or_missing_key_refuses_and_leaves_every_object_untouched(
    api: KubeClient, kmock: ApiServer, other_ring: KeyRing
) -> None:
    s = await store(api)
    await s.append(say("s", "one"))
    await s.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    await s.append(say("s", "two"))
    before = objects(kmock)
    writes = len(kmock.puts)

    refused = ConfigMapStore(api, NS, REPLICA, other_ring, BASE)
    with pytest.raises(StateUnreadable):
        await refused.load()
    with pytest.raises(StateUnreadable):
        await refused.append(say("s", "three"))
    with pytest.raises(StateUnreadable):
        await refused.checkpoint({})
    assert objects(kmock) == before
    assert len(kmock.puts) == writes


@pytest.mark.parametrize(
    "malformed",
    [
        "{not json",
        "[1, 2]",
        '{"v": 1, "current": {"slot": "a"}}',
        '{"v": 1, "current": "a0"}',
    ],
)
async def test_a_malformed_commit_point_is_reported_as_unreadable_state(
    api: KubeClient, kmock: ApiServer, malformed: str
) -> None:
    s = await store(api)
    await s.append(say("s", "one"))
    await s.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    commit = kmock.objects[kmock.resource("v1/configmaps"), NS, f"{REPLICA}-state"]
    commit["data"] = {"commit": malformed}
    writes = len(kmock.puts)

    refused = ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE)
    with pytest.raises(StateUnreadable, match="commit point is malformed"):
        await refused.load()
    with pytest.raises(StateUnreadable):
        await refused.append(say("s", "two"))
    assert len(kmock.puts) == writes


async def test_a_damaged_newest_checkpoint_falls_back_one_generation(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api)
    await s.append(say("s", "one"))
    await s.checkpoint({anon("s"): [{"role": "user", "content": "one"}]})
    await s.append(say("s", "two"))
    newest = await s.checkpoint(
        {anon("s"): [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]}
    )
    await s.append(say("s", "three"))
    chunk = kmock.objects[kmock.resource("v1/configmaps"), NS, f"{REPLICA}-state-b0"]
    damaged = bytearray(base64.b64decode(chunk["binaryData"]["chunk"]))
    damaged[-1] ^= 0xFF
    chunk["binaryData"] = {"chunk": base64.b64encode(bytes(damaged)).decode()}

    fallback = ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE)
    restored = await fallback.load()
    assert restored.checkpoint is not None
    assert restored.checkpoint.generation < newest.generation
    assert any(f"generation {newest.generation}" in w for w in restored.warnings)
    # The journal since the failed generation survives; what lay between the two is lost.
    assert [m["content"] for m in restored.state[anon("s")]] == ["one", "three"]
    info = await fallback.checkpoint(restored.state)
    assert commit_of(kmock)["quarantined"]["generation"] == newest.generation
    assert commit_of(kmock)["current"]["generation"] == info.generation


async def test_the_journal_compacts_itself_before_outgrowing_its_object(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api, journal_budget_bytes=4096)
    for turn in range(60):
        await s.append(say(f"s{turn % 3}", f"message {turn} " + "x" * 100))
    journal = objects(kmock)[f"{REPLICA}-state"].get("binaryData", {})
    assert sum(len(v) for v in journal.values()) < 4096
    assert "current" in commit_of(kmock)
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert sum(len(v) for v in restored.state.values()) == 60
    assert restored.state[anon("s0")][0]["content"].startswith("message 0 ")


async def test_concurrent_appends_share_updates_and_all_survive(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api)
    await s.append(say("s", "first"))
    before = len(kmock.puts)
    await asyncio.gather(*(s.append(say(f"s{i % 4}", f"m{i}")) for i in range(40)))
    assert len(kmock.puts) - before < 40
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert sum(len(v) for v in restored.state.values()) == 41


async def test_an_entry_that_cannot_be_encoded_fails_alone_and_its_batch_is_written(
    api: KubeClient, kmock: ApiServer
) -> None:
    await check_an_unencodable_entry_fails_alone(
        await store(api), ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load
    )


async def test_appends_during_a_checkpoint_are_not_lost(api: KubeClient, kmock: ApiServer) -> None:
    s = await store(api)
    await s.append(say("s", "before"))
    checkpointing = asyncio.create_task(
        s.checkpoint({anon("s"): [{"role": "user", "content": "before"}]})
    )
    await asyncio.sleep(0)  # the checkpoint has started; this append comes after it
    await s.append(say("s", "during"))
    await checkpointing
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert [m["content"] for m in restored.state[anon("s")]] == ["before", "during"]


async def test_the_probe_passes_when_the_api_server_answers(
    api: KubeClient, kmock: ApiServer
) -> None:
    s = await store(api)
    await s.probe()


# -- sessions belong to their clients (issue 15) ---------------------------------------------


def configmap_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, auth_tokens_file=write_tokens(tmp_path))


def app_store(api: KubeClient, keyring: KeyRing, settings: Settings) -> ConfigMapStore:
    context = record_context(settings)
    return ConfigMapStore(api, settings.namespace, settings.replica, keyring, context)


async def test_ownership_survives_a_restart_on_the_configmap_backend(
    api: KubeClient, make_client: MakeClient, tmp_path: Path, keyring: KeyRing
) -> None:
    settings = configmap_settings(tmp_path)
    first = await make_client(settings=settings, store=app_store(api, keyring, settings))
    await play_the_issue_exchange(first)
    await first.close()  # the final checkpoint holds both owners' sessions
    second = await make_client(settings=settings, store=app_store(api, keyring, settings))
    await ownership_is_as_the_exchange_left_it(second)


async def test_the_journal_replays_two_clients_sessions_of_one_id_apart(
    api: KubeClient,
) -> None:
    first = await store(api)
    for owner in ("alice", "bob"):
        message = {"role": "user", "content": f"from {owner}"}
        await first.append(JournalEntry("append", "s", (message,), client=owner))
    await first.append(JournalEntry("delete", "s", client="bob"))
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert restored.state == {SessionKey("alice", "s"): [{"role": "user", "content": "from alice"}]}


def configmap_values_holding(
    server: ApiServer, keyring: KeyRing, settings: Settings, owner: SessionKey
) -> list[bytes]:
    """The chunks of every checkpoint slot and the journal values that hold `owner`'s session."""
    base = record_context(settings)
    bodies = BodySeal(keyring, base)
    found: list[bytes] = []
    commit = json.loads(objects(server)[f"{settings.replica}-state"]["data"]["commit"])
    for ref in (commit["current"], commit["previous"]):
        names = [f"{settings.replica}-state-{ref['slot']}{i}" for i in range(ref["chunks"])]
        chunks = [base64.b64decode(objects(server)[n]["binaryData"]["chunk"]) for n in names]
        raw = keyring.open(b"".join(chunks), base.with_kind("checkpoint"))
        if owner in codec.decode_checkpoint(raw, bodies).state:
            found.extend(chunks)
    journal = objects(server)[f"{settings.replica}-state"].get("binaryData", {})
    for key, value in journal.items():
        segment, index = (int(part) for part in key.split("-")[1:])
        record = base64.b64decode(value)
        raw = keyring.open(record, base.with_kind("journal"))
        if codec.decode_entry(raw, segment, index, bodies).key == owner:
            found.append(record)
    return found


def every_configmap_byte(server: ApiServer) -> bytes:
    return b"".join(
        base64.b64decode(value)
        for obj in objects(server).values()
        for value in (obj.get("binaryData") or {}).values()
    )


@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_after_delete_and_the_next_checkpoint_no_configmap_holds_the_session(
    api: KubeClient,
    kmock: ApiServer,
    make_client: MakeClient,
    tmp_path: Path,
    keyring: KeyRing,
) -> None:
    settings = configmap_settings(tmp_path)
    app = await make_client(settings=settings, store=app_store(api, keyring, settings))
    sessions = app.app[SERVICES].sessions
    for turn in range(3):  # both slots and the journal hold alice's session
        await post(app, ALICE, f"{SECRET} #{turn} " + "x" * 2000)
        await sessions.checkpoint()
    await post(app, ALICE, "still in the journal")
    await post(app, BOB, "bob stays")
    alices = SessionKey("alice", "alice-private")
    sealed = configmap_values_holding(kmock, keyring, settings, alices)
    assert len(sealed) >= 3
    assert all(value in every_configmap_byte(kmock) for value in sealed)

    assert (await app.delete(PRIVATE, headers=ALICE)).status == 204
    await sessions.checkpoint()

    stored = every_configmap_byte(kmock)
    assert not [value for value in sealed if value in stored]
    restored = await app_store(api, keyring, settings).load()
    assert list(restored.state) == [SessionKey("bob", "alice-private")]


async def test_at_its_size_limit_the_backend_warns_then_answers_507_and_recovers_after_deletes(
    api: KubeClient, kmock: ApiServer, make_client: MakeClient
) -> None:
    """The review's configmap at its chunk budget: later appends were 500, /readyz green."""
    budgeted = ConfigMapStore(
        api, NS, REPLICA, ring(k1=KEY1), BASE, chunk_bytes=1024, journal_budget_bytes=2048
    )
    runtime = await make_client(store=budgeted)
    statuses: list[int] = []
    warned = False
    for turn in range(60):  # 8 chunks of 1 KiB fill up within a few dozen turns
        response = await runtime.post(
            f"/v1/sessions/s{turn % 4}/messages", json={"content": f"{turn} " + "x" * 300}
        )
        statuses.append(response.status)
        if response.status != 200:
            break
        warned = warned or "% of the 8192 bytes" in (await readiness_of_state(runtime))[1]
    assert statuses[-1] == 507, statuses
    assert warned  # readiness warned before the limit
    error = (await response.json())["error"]
    assert error["code"] == "insufficient_storage"
    assert "pvc backend" in error["message"]
    status, line = await readiness_of_state(runtime)
    assert status == 500
    assert line.startswith("[-]state failed: ")
    assert "sealed state is " in line

    for session in ("s0", "s1", "s2"):  # deletes still go in, so clients can free space
        assert (await runtime.delete(f"/v1/sessions/{session}")).status == 204
    await runtime.app[SERVICES].sessions.checkpoint()  # what the periodic checkpoint does
    assert (await readiness_of_state(runtime))[0] == 200
    answer = await runtime.post("/v1/sessions/s3/messages", json={"content": "room again"})
    assert answer.status == 200


async def test_the_checkpoint_lets_the_loop_serve_between_slices_and_seals_off_it(
    api: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await store(api)
    state = sessions_of(20, 60_000)
    async with watching_checkpoint_work(monkeypatch) as work:
        await s.checkpoint(state)
    check_the_loop_ran_between_slices(work, 20, 60_000)
    restored = await ConfigMapStore(api, NS, REPLICA, ring(k1=KEY1), BASE).load()
    assert restored.state == state

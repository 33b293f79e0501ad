"""A state rolled back on the volume is detected against the heartbeat's mark (issue 16: 12).

Checks, on the pvc backend with a `NullPublisher` shared between runs playing the
heartbeat Lease that outlives a restart:
- a normal restart, and one after a kill (state as fsynced, Lease as last beaten), serve
  every turn without a warning;
- deleting the newest checkpoint and journal, or cutting the journal at a record boundary,
  is refused in production: sessions answer 503 naming AGENTRY_ACCEPT_STATE_ROLLBACK,
  readiness and the heartbeat's health fail with both positions, no file changes and the
  heartbeat keeps the recorded mark;
- with the override (and outside production) the restored state is served, readiness
  warns, and the heartbeat's mark follows the state from then on;
- a record removed from the middle of a segment, or a whole segment from between others
  (each segment's first record names the position before it), is refused even where the
  mark alone would not tell (no Lease, or later segments still present);
- a mark from before an accepted fresh start (another set-aside stamp) is not compared.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from agent_runtime.app import record_context
from agent_runtime.clock import ManualClock
from agent_runtime.config import Settings
from agent_runtime.crypto import KeyRing
from agent_runtime.heartbeat import NullPublisher
from agent_runtime.highwater import HighWater, rollback
from agent_runtime.state import JournalEntry, PvcStore, framing
from agent_runtime.state.model import Position
from tests.support.runtime import MakeClient, make_settings, next_heartbeat, readiness_of_state

TURN = "/v1/sessions/s/messages"


def production(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        environment="production",
        state_backend="pvc",
        keys_dir=tmp_path / "keys",
        **overrides,
    )


async def run(
    make_client: MakeClient,
    settings: Settings,
    keyring: KeyRing,
    publisher: NullPublisher,
    turns: list[str],
) -> None:
    """Start a runtime on the state directory, post `turns`, stop it gracefully."""
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    client = await make_client(settings=settings, store=store, publisher=publisher)
    for turn in turns:
        assert (await client.post(TURN, json={"content": turn})).status == 200
    await client.close()


async def restart(
    make_client: MakeClient, settings: Settings, keyring: KeyRing, publisher: NullPublisher
) -> Any:
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    return await make_client(settings=settings, store=store, publisher=publisher)


def newest(directory: Path, prefix: str) -> Path:
    return sorted(directory.glob(f"{prefix}-*.agry"))[-1]


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


async def two_runs_then_delete_the_newest(
    make_client: MakeClient, settings: Settings, keyring: KeyRing, lease: NullPublisher
) -> dict[str, Any]:
    """Turn "a", restart, turn "b", stop; delete the newest checkpoint and journal (the
    second run's), as someone with write access to the volume could. The recorded mark."""
    await run(make_client, settings, keyring, lease, ["a"])
    await run(make_client, settings, keyring, lease, ["b"])
    newest(settings.state_dir, "checkpoint").unlink()
    newest(settings.state_dir, "journal").unlink()
    mark: dict[str, Any] = lease.published[-1]["highWater"]
    return mark


async def user_turns(client: Any) -> list[str]:
    response = await client.get("/v1/sessions/s")
    assert response.status == 200
    body = await response.json()
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


async def test_a_normal_restart_serves_every_turn_without_a_warning(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path
) -> None:
    settings, lease = production(tmp_path), NullPublisher()
    await run(make_client, settings, keyring, lease, ["a", "b"])
    await run(make_client, settings, keyring, lease, ["c"])
    client = await restart(make_client, settings, keyring, lease)
    assert await user_turns(client) == ["a", "b", "c"]
    assert await readiness_of_state(client) == (200, "[+]state ok")


async def test_deleting_the_newest_checkpoint_and_journal_is_refused_in_production(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> None:
    settings, lease = production(tmp_path), NullPublisher()
    recorded = await two_runs_then_delete_the_newest(make_client, settings, keyring, lease)
    before = digests(settings.state_dir)

    client = await restart(make_client, settings, keyring, lease)
    refused = await client.post(TURN, json={"content": "c"})
    assert refused.status == 503
    message = (await refused.json())["error"]["message"]
    assert "state rolled back" in message
    assert "AGENTRY_ACCEPT_STATE_ROLLBACK=true" in message
    assert (await client.get("/v1/sessions/s")).status == 503
    status, line = await readiness_of_state(client)
    assert status == 500
    assert f"segment {recorded['segment']} (0 records)" in line
    assert "restored up to segment 1 (0 records)" in line
    beat = await next_heartbeat(lease, clock)
    assert beat["health"]["state"].startswith("failed: state rolled back")
    assert beat["highWater"] == recorded
    await client.close()
    assert digests(settings.state_dir) == before  # no checkpoint, nothing repaired
    assert lease.published[-1]["highWater"] == recorded


async def kill_after_a_heartbeat(
    make_client: MakeClient,
    settings: Settings,
    keyring: KeyRing,
    clock: ManualClock,
    turns: list[str],
) -> tuple[Path, NullPublisher]:
    """Post `turns`, let a heartbeat go out, copy the state as a kill -9 would leave it;
    the copy and a Lease holding that heartbeat."""
    running = NullPublisher()
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    client = await make_client(settings=settings, store=store, publisher=running)
    for turn in turns:
        assert (await client.post(TURN, json={"content": turn})).status == 200
    lease = NullPublisher()
    lease.published.append(await next_heartbeat(running, clock))
    killed = settings.state_dir.with_name("killed")
    shutil.copytree(settings.state_dir, killed)
    await client.close()
    shutil.rmtree(settings.state_dir)
    killed.rename(settings.state_dir)
    return settings.state_dir, lease


async def three_turns_killed_then_kept(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock, tmp_path: Path, keep: list[int]
) -> Any:
    """Three turns, a heartbeat, a kill; then the journal rewritten with only the records
    at `keep` (whole records, as someone with the volume but not the key could); a
    production runtime restarted on it with the Lease."""
    settings = production(tmp_path)
    directory, lease = await kill_after_a_heartbeat(
        make_client, settings, keyring, clock, ["a", "b", "c"]
    )
    journal = newest(directory, "journal")
    records, _ = framing.split(journal.read_bytes())
    journal.write_bytes(b"".join(framing.frame(records[i]) for i in keep))
    return await restart(make_client, settings, keyring, lease)


async def test_a_restart_after_a_kill_serves_every_acknowledged_turn(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> None:
    settings = production(tmp_path)
    _, lease = await kill_after_a_heartbeat(make_client, settings, keyring, clock, ["a", "b"])
    assert lease.published[-1]["highWater"]["records"] == 2
    client = await restart(make_client, settings, keyring, lease)
    assert await user_turns(client) == ["a", "b"]
    assert await readiness_of_state(client) == (200, "[+]state ok")


async def test_a_journal_cut_at_a_record_boundary_is_refused_in_production(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> None:
    client = await three_turns_killed_then_kept(make_client, keyring, clock, tmp_path, [0, 1])
    refused = await client.post(TURN, json={"content": "d"})
    assert refused.status == 503
    status, line = await readiness_of_state(client)
    assert status == 500
    assert "(2 records), but the heartbeat Lease recorded" in line
    assert "(3 records)" in line


async def test_with_the_override_the_restored_state_is_served_with_a_warning(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> None:
    settings, lease = production(tmp_path), NullPublisher()
    recorded = await two_runs_then_delete_the_newest(make_client, settings, keyring, lease)

    accepted = production(tmp_path, accept_state_rollback=True)
    client = await restart(make_client, accepted, keyring, lease)
    assert await user_turns(client) == ["a"]
    status, line = await readiness_of_state(client)
    assert status == 200
    assert line.startswith("[+]state ok (warning: state rolled back: restored up to segment 1")
    assert (await client.post(TURN, json={"content": "c"})).status == 200
    beat = await next_heartbeat(lease, clock)
    assert beat["health"]["state"] == "ok"
    assert beat["highWater"]["segment"] < recorded["segment"]  # the rollback is accepted


async def test_outside_production_a_rollback_is_served_with_a_warning(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path
) -> None:
    settings, lease = make_settings(tmp_path, state_backend="pvc"), NullPublisher()
    await two_runs_then_delete_the_newest(make_client, settings, keyring, lease)
    client = await restart(make_client, settings, keyring, lease)
    assert await user_turns(client) == ["a"]
    status, line = await readiness_of_state(client)
    assert status == 200
    assert "warning: state rolled back" in line


def test_a_mark_from_before_a_fresh_start_is_not_compared() -> None:
    mark = HighWater(Position(9, 4), epoch="")
    assert rollback(Position(-1, 0), mark, epoch="20261129t0500") is None
    assert rollback(Position(-1, 0), mark, epoch="") is not None
    assert rollback(Position(9, 4), mark, epoch="") is None


async def test_a_record_cut_from_the_middle_of_a_segment_is_refused_in_production(
    make_client: MakeClient, keyring: KeyRing, clock: ManualClock, tmp_path: Path
) -> None:
    client = await three_turns_killed_then_kept(make_client, keyring, clock, tmp_path, [0, 2])
    assert (await client.post(TURN, json={"content": "d"})).status == 503
    status, line = await readiness_of_state(client)
    assert status == 500
    assert "restored up to segment 0 (1 records)" in line


async def test_a_segment_removed_from_between_others_is_refused_without_a_lease(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path
) -> None:
    settings = production(tmp_path)
    for turn in ("a", "b", "c"):  # three processes killed before any checkpoint
        store = PvcStore(settings.state_dir, keyring, record_context(settings))
        await store.load()
        await store.append(JournalEntry("append", "s", ({"role": "user", "content": turn},)))
        await store.close()
    (settings.state_dir / "journal-00000001.agry").unlink()
    before = digests(settings.state_dir)

    client = await restart(make_client, settings, keyring, NullPublisher())
    refused = await client.post(TURN, json={"content": "d"})
    assert refused.status == 503
    message = (await refused.json())["error"]["message"]
    assert "journal-00000002.agry follows segment 1 (1 records)" in message
    assert "replay reached only segment 0 (1 records)" in message
    await client.close()
    assert digests(settings.state_dir) == before

"""A full disk under the pvc backend is 507 and a readiness failure, not 500 (issue 16: 13).

Checks: when the volume has no space left (ENOSPC from the journal write), the turn is
answered 507 `insufficient_storage` with the reason, `/readyz` fails its `state` check
with that reason and the heartbeat carries it to the operator (whose Degraded condition
shows it); once a write succeeds again, readiness and the heartbeat recover by themselves.
The configmap backend at its chunk budget is checked in test_state_configmap.py.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from agent_runtime.app import record_context
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from agent_runtime.heartbeat import NullPublisher
from agent_runtime.state import PvcStore
from agent_runtime.state import pvc as pvc_module
from tests.support.runtime import MakeClient, make_settings, next_heartbeat, readiness_of_state


def no_space_left(fd: int, data: bytes) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_full_volume_answers_507_and_fails_readiness_until_space_returns(
    make_client: MakeClient,
    keyring: KeyRing,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(tmp_path, state_backend="pvc")
    store = PvcStore(settings.state_dir, keyring, record_context(settings))
    publisher = NullPublisher()
    client = await make_client(settings=settings, store=store, publisher=publisher)
    assert (await client.post("/v1/sessions/s/messages", json={"content": "a"})).status == 200

    monkeypatch.setattr(pvc_module, "_write_all", no_space_left)
    refused = await client.post("/v1/sessions/s/messages", json={"content": "b"})
    assert refused.status == 507
    error = (await refused.json())["error"]
    assert error["code"] == "insufficient_storage"
    assert "no space left for the journal" in error["message"]
    status, line = await readiness_of_state(client)
    assert status == 500
    assert line.startswith("[-]state failed: ")
    assert "no space left for the journal" in line
    beat = await next_heartbeat(publisher, clock)
    assert beat["ready"] is False
    assert beat["health"]["state"].startswith("failed: ")

    monkeypatch.undo()
    assert (await client.post("/v1/sessions/s/messages", json={"content": "c"})).status == 200
    assert await readiness_of_state(client) == (200, "[+]state ok")
    assert (await next_heartbeat(publisher, clock))["health"]["state"] == "ok"

"""A state store out of reach is a prompt 503, not a hang or a 500 (issue 12, network cut).

Checks: a ConfigMap call to an API server that takes the connection and never answers
ends with a StateError naming the deadline; a turn whose journal append fails that way is
answered 503 `state_unavailable` with Retry-After, nothing of it is kept, and the next
turn after the store is back is 200.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_runtime.app import record_context
from agent_runtime.crypto import KeyRing
from agent_runtime.kubeapi import KubeClient
from agent_runtime.state import JournalEntry, MemoryStore, StateError
from agent_runtime.state.kube import ConfigMaps
from tests.support.runtime import MakeClient, make_settings
from tests.support.silent_endpoint import SilentEndpoint


async def test_a_configmap_call_to_a_silent_api_server_ends_at_its_deadline() -> None:
    async with SilentEndpoint() as silent:
        api = KubeClient.for_url(silent.url)
        maps = ConfigMaps(api, "team-a", timeout_seconds=0.5)
        started = asyncio.get_running_loop().time()
        with pytest.raises(StateError, match=r"did not answer within 0\.5s"):
            await maps.get("demo-0-state")
        assert asyncio.get_running_loop().time() - started < 3
        await api.close()
        assert silent.accepted == 1


class CutOffStore(MemoryStore):
    """A memory store whose appends fail as the configmap store's do when cut off."""

    cut = False

    async def append(self, entry: JournalEntry) -> None:
        if self.cut:
            raise StateError("cannot update configmap team-a/demo-0-state: no answer")
        await super().append(entry)


async def test_a_turn_the_store_cannot_take_is_503_with_retry_after_and_not_kept(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Any
) -> None:
    settings = make_settings(tmp_path)
    store = CutOffStore(keyring, record_context(settings))
    http = await make_client(settings=settings, store=store)
    assert (await http.post("/v1/sessions/s/messages", json={"content": "one"})).status == 200

    store.cut = True
    refused = await http.post("/v1/sessions/s/messages", json={"content": "two"})
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "5"
    error = (await refused.json())["error"]
    assert error["code"] == "state_unavailable"
    assert "cannot update configmap" in error["message"]

    store.cut = False
    assert (await http.post("/v1/sessions/s/messages", json={"content": "three"})).status == 200
    history = await (await http.get("/v1/sessions/s")).json()
    said = [m["content"] for m in history["messages"] if m["role"] == "user"]
    assert said == ["one", "three"]

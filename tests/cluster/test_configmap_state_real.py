"""The configmap state store against the real API server (marker `cluster`).

What kmock cannot prove: that real PUTs with a stale `resourceVersion` get 409 and stop a
second writer, that chunks near 900 KiB pass the API server's 1 MiB ConfigMap validation,
and that binaryData round-trips byte for byte through etcd.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from agentry_cluster.pytest_plugin import Cluster
from agentry_operator.constants import AGENT_LABEL
from agentry_operator.watching import SELECTOR

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.kubeapi import KubeClient, kubeconfig_credentials
from agent_runtime.state import ConfigMapStore, JournalEntry, MemoryState, StateError
from tests.support.runtime import anon

pytestmark = pytest.mark.cluster

REPLICA = "support-bot-0"
RING = KeyRing({"k1": bytes(range(32))}, "k1")


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[KubeClient]:
    """The runtime's own client, with the admin kubeconfig's client certificate."""
    api_client = KubeClient(kubeconfig_credentials(cluster.kubeconfig))
    yield api_client
    await api_client.close()


def base(namespace: str) -> RecordContext:
    return RecordContext(namespace, "support-bot", REPLICA, "")


def say(text: str) -> JournalEntry:
    return JournalEntry("append", "s", ({"role": "user", "content": text},))


async def test_a_multi_chunk_checkpoint_and_journal_round_trip_through_the_api_server(
    api: KubeClient, namespace: str
) -> None:
    state: MemoryState = {
        anon(f"s{i}"): [{"role": "user", "content": f"{i:06d}" * 4000}] for i in range(100)
    }
    first = ConfigMapStore(api, namespace, REPLICA, RING, base(namespace))
    await first.load()
    info = await first.checkpoint(state)
    await first.append(say("after the checkpoint"))
    assert info.bytes > 2 * 1024 * 1024

    restored = await ConfigMapStore(api, namespace, REPLICA, RING, base(namespace)).load()
    assert restored.state[anon("s")] == [{"role": "user", "content": "after the checkpoint"}]
    assert {k: v for k, v in restored.state.items() if k != anon("s")} == state
    listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    names = {item["metadata"]["name"] for item in listed.body["items"]}
    assert {f"{REPLICA}-state", f"{REPLICA}-state-a0", f"{REPLICA}-state-a2"} <= names


async def test_state_configmaps_are_found_by_agent_but_not_sent_to_the_operators_watch(
    api: KubeClient, namespace: str
) -> None:
    """The operator's key-safety LIST (by the Agent's label) finds the state; its child
    watch (`SELECTOR`, evaluated by the real API server) never sees a checkpoint write."""
    store = ConfigMapStore(api, namespace, REPLICA, RING, base(namespace))
    await store.load()
    await store.checkpoint({anon("s"): [{"role": "user", "content": "x" * 2000}]})
    await store.append(say("after"))
    path = f"/api/v1/namespaces/{namespace}/configmaps"

    async def names(selector: str) -> set[str]:
        listed = await api.request("GET", f"{path}?{urlencode({'labelSelector': selector})}")
        assert listed.status == 200, listed.body
        return {item["metadata"]["name"] for item in listed.body["items"]}

    by_agent = await names(f"{AGENT_LABEL}=support-bot")
    assert {f"{REPLICA}-state", f"{REPLICA}-state-a0"} <= by_agent
    assert await names(SELECTOR) == set()


async def test_a_second_writer_is_stopped_by_the_resource_version_guard(
    api: KubeClient, namespace: str
) -> None:
    mine = ConfigMapStore(api, namespace, REPLICA, RING, base(namespace))
    await mine.load()
    await mine.append(say("mine"))
    theirs = ConfigMapStore(api, namespace, REPLICA, RING, base(namespace))
    await theirs.load()
    await theirs.append(say("theirs"))
    with pytest.raises(StateError, match="another writer"):
        await mine.append(say("mine again"))

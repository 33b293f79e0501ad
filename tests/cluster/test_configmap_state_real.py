"""The configmap state store against the real API server (marker `cluster`).

What kmock cannot prove: that real PUTs with a stale `resourceVersion` get 409 and stop a
second writer, that chunks near 900 KiB pass the API server's 1 MiB ConfigMap validation,
and that binaryData round-trips byte for byte through etcd.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from agentry_cluster.pytest_plugin import Cluster

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

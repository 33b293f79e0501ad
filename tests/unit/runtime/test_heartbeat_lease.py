"""The heartbeat Lease, against kmock's Kubernetes emulator.

Checks: the first publish creates `<replica>-heartbeat` in the Agent's namespace with the
labels, holder, lease duration and the JSON annotation; later publishes replace it (the
annotation follows the newest heartbeat), so the operator always reads the latest.
A restarted runtime reads the heartbeat its predecessor left (None before the first).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kmock import KubernetesEmulator, ResourceInfo
from kubernetes_asyncio import client

from agent_runtime.heartbeat import ANNOTATION, LeasePublisher

LEASES = "coordination.k8s.io/v1/leases"


def api_client_for(emulator: Any) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = str(emulator.url).rstrip("/")
    return client.ApiClient(configuration)


async def test_the_lease_is_created_then_replaced_with_the_newest_heartbeat(
    kmock: KubernetesEmulator,
) -> None:
    kmock.resources[LEASES] = ResourceInfo(
        kind="Lease", namespaced=True, verbs={"get", "create", "update", "list", "watch"}
    )
    publisher = LeasePublisher(
        api_client_for(kmock),
        namespace="team-a",
        agent="demo",
        replica="demo-0",
        interval_seconds=10,
    )
    first = {"v": 1, "ready": True, "metrics": {"requests": 1}}
    await publisher.publish(first, datetime(2026, 1, 1, tzinfo=UTC))
    second = {"v": 1, "ready": False, "metrics": {"requests": 9}}
    await publisher.publish(second, datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC))
    await publisher.close()
    lease = kmock.objects[LEASES, "team-a", "demo-0-heartbeat"]
    assert lease["spec"]["holderIdentity"] == "demo-0"
    assert lease["spec"]["leaseDurationSeconds"] == 30
    assert lease["spec"]["renewTime"].startswith("2026-01-01T00:00:10")
    assert lease["metadata"]["labels"]["agentry.dev/agent"] == "demo"
    assert json.loads(lease["metadata"]["annotations"][ANNOTATION]) == second


async def test_a_restarted_runtime_reads_the_heartbeat_its_predecessor_left(
    kmock: KubernetesEmulator,
) -> None:
    kmock.resources[LEASES] = ResourceInfo(
        kind="Lease", namespaced=True, verbs={"get", "create", "update", "list", "watch"}
    )

    def publisher() -> LeasePublisher:
        return LeasePublisher(
            api_client_for(kmock),
            namespace="team-a",
            agent="demo",
            replica="demo-0",
            interval_seconds=10,
        )

    first = publisher()
    assert await first.last() is None  # a first start: no Lease yet
    beat = {"v": 1, "highWater": {"segment": 7, "records": 3, "epoch": ""}}
    await first.publish(beat, datetime(2026, 1, 1, tzinfo=UTC))
    await first.close()
    second = publisher()
    assert await second.last() == beat
    await second.close()

"""The heartbeat Lease, against kmock's Kubernetes emulator.

Checks: the first publish creates `<replica>-heartbeat` in the Agent's namespace with the
labels, holder, lease duration and the JSON annotation; later publishes replace it (the
annotation follows the newest heartbeat), so the operator always reads the latest.
A restarted runtime reads the heartbeat its predecessor left (None before the first).
An API server that accepts the connection and never answers costs each Lease call its
deadline, not the loop: the loop counts the failure and beats again. A Lease call the API
server refuses (403) is a missed beat whose log line gives the API server's reason, and
never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from kmock import KubernetesEmulator, ResourceInfo

from agent_runtime.clock import SystemClock
from agent_runtime.heartbeat import ANNOTATION, HeartbeatLoop, LeasePublisher, LeaseTimeout
from agent_runtime.kubeapi import Credentials, KubeClient, StaticToken
from tests.support.runtime_process import free_port, wait_until
from tests.support.silent_endpoint import SilentEndpoint

LEASES = "coordination.k8s.io/v1/leases"


def api_client_for(emulator: Any) -> KubeClient:
    return KubeClient.for_url(str(emulator.url))


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


def silent_publisher(endpoint: SilentEndpoint, deadline: float) -> LeasePublisher:
    return LeasePublisher(
        KubeClient.for_url(endpoint.url),
        namespace="team-a",
        agent="demo",
        replica="demo-0",
        interval_seconds=0.1,
        request_timeout_seconds=deadline,
    )


async def test_a_lease_call_the_api_server_never_answers_gives_up_at_the_deadline() -> None:
    async with SilentEndpoint() as silent:
        publisher = silent_publisher(silent, deadline=0.5)
        # The outer bound only keeps a regression from hanging the suite: without the
        # deadline the call waits for as long as the connection stays open.
        async with asyncio.timeout(30):
            with pytest.raises(LeaseTimeout, match=r"patch lease team-a/demo-0-heartbeat.*0\.5s"):
                await publisher.publish({"v": 1}, datetime(2026, 1, 1, tzinfo=UTC))
            with pytest.raises(LeaseTimeout, match="read lease"):
                await publisher.last()
        await publisher.close()
        assert silent.accepted >= 1, "the call reached the server"


async def test_the_heartbeat_loop_goes_on_past_calls_that_hang() -> None:
    async with SilentEndpoint() as silent:
        publisher = silent_publisher(silent, deadline=0.2)
        loop = HeartbeatLoop(publisher, lambda: {"v": 1}, SystemClock(), interval=0.1)
        running = asyncio.create_task(loop.run())
        try:
            await wait_until(lambda: loop.failures >= 3, 30)
            assert not running.done(), "the loop stopped"
            assert silent.accepted >= 3, "each beat tried the API server again"
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await publisher.close()


async def forbidden(request: web.Request) -> web.Response:
    status = {
        "kind": "Status",
        "reason": "Forbidden",
        "message": 'leases.coordination.k8s.io "demo-0-heartbeat" is forbidden',
        "code": 403,
    }
    return web.json_response(status, status=403)


async def test_a_refused_lease_call_is_a_missed_beat_logged_with_the_reason_not_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forbidden)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    api = KubeClient(Credentials(f"http://127.0.0.1:{port}", token=StaticToken("s3cr3t-token")))
    publisher = LeasePublisher(
        api, namespace="team-a", agent="demo", replica="demo-0", interval_seconds=10
    )
    loop = HeartbeatLoop(publisher, lambda: {"v": 1}, SystemClock(), interval=10)
    try:
        with caplog.at_level(logging.WARNING, logger="agent_runtime.heartbeat"):
            assert await loop.beat() is False
    finally:
        await publisher.close()
        await runner.cleanup()
    assert loop.failures == 1
    [record] = [r for r in caplog.records if r.getMessage() == "heartbeat not published"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["reason"] == (
        "cannot patch lease team-a/demo-0-heartbeat: 403 Forbidden "
        'leases.coordination.k8s.io "demo-0-heartbeat" is forbidden'
    )
    assert "s3cr3t-token" not in caplog.text + str(fields)

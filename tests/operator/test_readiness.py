"""The operator's /readyz: unready until every Agent that existed when it started has been
handled once, ready after; kopf's /healthz (liveness) is a separate endpoint.

Agents are created before the operator starts, as after an upgrade. Their converges wait
on a semaphore the test holds, so "not caught up" is observed for certain, then released.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
from agentry_operator.kube import Kube
from agentry_operator.reconcile import Reconciler
from agentry_operator.settings import OperatorSettings

from tests.operator.conftest import AGENTS, WebhookSink, running_operator

NAMES = ("alpha", "beta")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
        "spec": {"suspend": True},
    }


async def readyz(port: int) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.text()


async def test_ready_only_once_every_agent_that_existed_at_start_was_handled(
    api: Any, operator_settings: OperatorSettings, webhook: WebhookSink, eventually: Any
) -> None:
    for name in NAMES:
        await api.create(AGENTS, agent(name))
    port = free_port()
    settings = operator_settings.model_copy(update={"readiness_port": port})
    held = asyncio.Semaphore(0)
    kube = await Kube.connect(settings.kubeconfig)
    reconciler = Reconciler(kube=kube, settings=settings, converging=held)
    async with running_operator(settings, webhook, reconciler):
        await asyncio.sleep(0.5)  # kopf lists the Agents and their handlers start, and wait
        status, text = await readyz(port)
        assert status == 503
        assert "2 Agent(s) not handled yet: ns/alpha, ns/beta" in text

        for _ in NAMES:
            held.release()
        for _ in range(100):
            if (await readyz(port))[0] == 200:
                break
            await asyncio.sleep(0.05)
        assert await readyz(port) == (200, "ok: watching, every Agent handled since start\n")
        assert await eventually(lambda: all(api.get(AGENTS, "ns", n).get("status") for n in NAMES))

"""End to end on the local cluster: what a platform team sees when the model misbehaves.

- The model endpoint goes away: the Agent turns Degraded (condition with a reason),
  replies still come back 200 marked ``degraded``, the pods stay Ready; when the endpoint
  returns, replies are the model's again and the Agent is Running.
- A burst of model errors: a Warning Event, Alerting=True and exactly one webhook POST for
  the incident; when the errors stop, exactly one "resolved" POST and nothing more.

The model is the fake OpenAI-compatible provider of tests/support/fake_provider.py and
the alert receiver a small HTTP server, both running in this process on the host's
address on the cluster's node link (`host_ip`: pods reach the host there). They live on
an event loop in a background thread, so the blocking kubectl calls of the test do not
stall them. Agents send
heartbeats every 2 s and their circuit stays open 3 s (via ``spec.env``) to keep the
tests short; the operator of the session fixture updates status every 2 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.agents import agent_manifest
from tests.support.e2e import get_json, pod_turn, wait_for
from tests.support.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e

T = TypeVar("T")
API_KEY = "sk-test-valid"
# Heartbeats every 2 s come from the chart (tests/e2e/conftest.py); the circuit is tuned
# per Agent in its spec.
FAST_CIRCUIT = {"circuitOpenSeconds": 3}


class LoopThread:
    """An asyncio loop in a daemon thread, for servers the pods call while the test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop's thread (the servers' state is not locked)."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class WebhookReceiver:
    """Records the JSON bodies POSTed to it, as an Alertmanager or Slack receiver would."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.bodies: list[dict[str, Any]] = []
        self.server: TestServer | None = None

    async def _post(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.json_response({"ok": True})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self.server = TestServer(app, host=self.host)
        await self.server.start_server()
        return str(self.server.make_url("/hook"))

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def apply(cluster: Any, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def openai_agent(
    namespace: str, name: str, endpoint: str, circuit: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    model = {
        "provider": "openai",
        "endpoint": endpoint,
        "name": "test-model",
        "apiKeySecretRef": {"name": "model-key", "key": "api-key"},
        "timeoutSeconds": 2,
        "maxRetries": 0,
        **(circuit or {}),
    }
    state = {"backend": "configmap", "checkpointIntervalSeconds": 10}
    return agent_manifest(name, namespace, {"replicas": 1, "model": model, "state": state, **spec})


def agent_status(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    body = get_json(cluster, "agents.agentry.dev", name, "-n", namespace) or {}
    return dict(body.get("status") or {})


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def wait_until_observed(cluster: Any, namespace: str, name: str) -> str:
    """Until the pod is Ready and the operator reads its heartbeat; returns the pod IP."""
    pod = f"{name}-0"

    def ready_ip() -> str | None:
        body = get_json(cluster, "pod", pod, "-n", namespace) or {}
        status = body.get("status") or {}
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
        )
        return status.get("podIP") if ready else None

    ip: str = wait_for(ready_ip, 180, f"pod {pod} Ready")
    wait_for(
        lambda: (
            (s := agent_status(cluster, namespace, name)).get("phase") == "Running"
            and s.get("health", {}).get("model") == "ok"
        ),
        120,
        "phase Running with a heartbeat",
    )
    return ip


def send(ip: str, content: str, session: str = "s1") -> tuple[int, dict[str, Any]]:
    """POST a message to the pod (pod IPs are reachable from the host); (status, body)."""
    reply = pod_turn(f"http://{ip}:8080", session, content)
    return reply.status, reply.body or {}


def pod_ready_and_restarts(cluster: Any, namespace: str, pod: str) -> tuple[bool, int]:
    status = (get_json(cluster, "pod", pod, "-n", namespace) or {}).get("status") or {}
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    return ready, restarts


def warning_events(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    body = get_json(
        cluster,
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name},type=Warning",
    )
    return list((body or {}).get("items") or [])


def test_a_model_outage_degrades_the_agent_with_marked_replies_and_it_recovers_when_the_model_returns(  # noqa: E501
    operator: Any, namespace: str, loop_thread: LoopThread
) -> None:
    host = operator.info["host_ip"]
    fake = FakeProvider(host=host, port=free_port(host))
    loop_thread.run(fake.__aenter__())
    try:
        apply(operator, secret(namespace, "model-key", {"api-key": API_KEY}))
        apply(operator, openai_agent(namespace, "outage", fake.url, circuit=FAST_CIRCUIT))
        ip = wait_until_observed(operator, namespace, "outage")
        _, restarts_before = pod_ready_and_restarts(operator, namespace, "outage-0")

        code, body = send(ip, "hello")
        assert (code, body["degraded"]) == (200, False)
        assert body["reply"] == "model says: hello"

        loop_thread.run(fake.__aexit__(None, None, None))  # the endpoint goes away

        for i in range(6):  # enough consecutive failures to open the circuit
            code, body = send(ip, f"during outage {i}")
            assert code == 200, body
            assert body["degraded"] is True
        degraded = wait_for(
            lambda: (
                s
                if (s := agent_status(operator, namespace, "outage")).get("phase") == "Degraded"
                else None
            ),
            60,
            "phase Degraded",
        )
        condition = cond(degraded, "Degraded")
        assert condition["status"] == "True"
        assert condition["reason"] == "ModelUnavailable"
        assert cond(degraded, "Ready")["status"] == "True"
        assert pod_ready_and_restarts(operator, namespace, "outage-0") == (True, restarts_before)
        sts = get_json(operator, "statefulset", "outage", "-n", namespace)
        assert sts["status"]["readyReplicas"] == 1

        loop_thread.run(fake.__aenter__())  # the endpoint returns on the same address

        def model_answers() -> dict[str, Any] | None:
            code, body = send(ip, "are you back?")
            return body if code == 200 and body["degraded"] is False else None

        back = wait_for(model_answers, 60, "a reply from the model again", interval=1.0)
        assert back["reply"] == "model says: are you back?"
        recovered = wait_for(
            lambda: (
                s
                if (s := agent_status(operator, namespace, "outage")).get("phase") == "Running"
                else None
            ),
            60,
            "phase Running again",
        )
        assert cond(recovered, "Degraded")["status"] == "False"
        assert pod_ready_and_restarts(operator, namespace, "outage-0") == (True, restarts_before)
        reasons = {e["reason"] for e in warning_events(operator, namespace, "outage")}
        assert "ModelUnavailable" in reasons
    finally:
        loop_thread.run(fake.__aexit__(None, None, None))


def test_an_error_burst_raises_one_alert_with_one_webhook_call_and_one_resolve_call(
    operator: Any, namespace: str, loop_thread: LoopThread
) -> None:
    host = operator.info["host_ip"]
    fake = FakeProvider(host=host)
    receiver = WebhookReceiver(host)
    loop_thread.run(fake.__aenter__())
    hook_url = loop_thread.run(receiver.start())
    try:
        apply(operator, secret(namespace, "model-key", {"api-key": API_KEY}))
        apply(operator, secret(namespace, "alert-hook", {"url": hook_url}))
        # A high circuit threshold keeps every request going to the provider, so each
        # injected fault is exactly one failed request.
        circuit = {**FAST_CIRCUIT, "circuitFailureThreshold": 1000}
        alerting = {
            "errorRateThreshold": 0.5,
            "windowSeconds": 10,
            "minRequests": 5,
            "webhookSecretRef": {"name": "alert-hook", "key": "url"},
        }
        apply(
            operator,
            openai_agent(namespace, "bursty", fake.url, circuit=circuit, alerting=alerting),
        )
        ip = wait_until_observed(operator, namespace, "bursty")
        assert send(ip, "warm up")[1]["degraded"] is False

        burst = 12
        loop_thread.call(lambda: fake.fail(burst, 500))
        replies = [send(ip, f"burst {i}") for i in range(burst)]
        assert all(code == 200 and body["degraded"] for code, body in replies)

        alerting_status = wait_for(
            lambda: (
                s
                if cond(s := agent_status(operator, namespace, "bursty"), "Alerting").get("status")
                == "True"
                else None
            ),
            60,
            "Alerting=True",
        )
        assert cond(alerting_status, "Alerting")["reason"] == "ErrorRateHigh"
        events = wait_for(
            lambda: [
                e
                for e in warning_events(operator, namespace, "bursty")
                if e["reason"] == "ErrorRateHigh"
            ],
            30,
            "a Warning Event ErrorRateHigh",
        )
        assert "Alerting=True" in events[0]["message"]
        wait_for(lambda: loop_thread.call(lambda: len(receiver.bodies)) >= 1, 30, "webhook POST")

        # More failures inside the same incident must not send more notifications.
        loop_thread.call(lambda: fake.fail(4, 500))
        for i in range(4):
            send(ip, f"still failing {i}")
        time.sleep(6)  # three status intervals of the operator
        firing = loop_thread.call(lambda: list(receiver.bodies))
        assert [b["status"] for b in firing] == ["firing"]
        assert firing[0]["agent"] == "bursty"
        assert firing[0]["namespace"] == namespace
        assert firing[0]["errorRate"] > 0.5

        # The errors stop: successful traffic, then the window (10 s) moves past the burst.
        for i in range(5):
            assert send(ip, f"healthy {i}")[1]["degraded"] is False
        wait_for(
            lambda: (
                cond(agent_status(operator, namespace, "bursty"), "Alerting").get("status")
                == "False"
            ),
            60,
            "Alerting=False",
        )
        wait_for(lambda: loop_thread.call(lambda: len(receiver.bodies)) >= 2, 30, "resolve POST")
        time.sleep(6)  # no storm afterwards either
        bodies = loop_thread.call(lambda: list(receiver.bodies))
        assert [b["status"] for b in bodies] == ["firing", "resolved"]
    finally:
        loop_thread.run(receiver.stop())
        loop_thread.run(fake.__aexit__(None, None, None))

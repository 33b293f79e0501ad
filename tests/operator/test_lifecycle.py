"""Behaviour of the running operator against kmock, beyond the children it creates.

Checks: drift is put back; a spec change rewrites the config and rolls the pods (hash),
while a new rate limit or replica count rewrites only the limits file (no roll);
an existing key Secret is adopted and never regenerated; heartbeats and the StatefulSet
become status; an error burst yields one webhook call per incident and one on resolve;
delete with retainOnDelete keeps and labels the keys and state; a new Agent of the same
name adopts them again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agentry_operator.kube import Kube, KubeError
from agentry_operator.models import Agent
from agentry_operator.reconcile import Reconciler

from tests.support.agents import connection_secret, shared_state

AGENTS = "agentry.dev/v1alpha1/agents"
STS = "apps/v1/statefulsets"
HASH = "agentry.dev/config-hash"


def agent(name: str = "bot", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }


def lease(pod: str, requests: int, errors: int, circuit: str = "closed") -> dict[str, Any]:
    beat = {
        "v": 1,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ready": True,
        "circuit": circuit,
        "health": {"state": "ok", "model": "ok", "disk": "ok", "encryption": "ok"},
        "metrics": {
            "requests": requests,
            "ok": requests - errors,
            "errors": errors,
            "throttled": 1,
            "degraded": 0,
            "p95Ms": 12.5,
        },
        "lastCheckpoint": {
            "time": "2026-11-26T10:00:00Z",
            "generation": 3,
            "bytes": 99,
            "keyId": "k1",
        },
    }
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": f"{pod}-heartbeat",
            "namespace": "ns",
            # The runtime's labels: the operator watches heartbeat Leases by them.
            "labels": {
                "app.kubernetes.io/managed-by": "agentry-operator",
                "agentry.dev/agent": pod.rsplit("-", 1)[0],
            },
            "annotations": {"agentry.dev/heartbeat": json.dumps(beat)},
        },
        "spec": {"holderIdentity": pod},
    }


async def delete_once_finalized(api: Any, eventually: Any, name: str = "bot") -> None:
    """Delete the Agent after the operator put its finalizer on, and wait until it is gone,
    so the finalizer (retainOnDelete) has run."""
    await eventually(
        lambda: (
            "agentry.dev/finalizer" in api.get(AGENTS, "ns", name)["metadata"].get("finalizers", [])
        )
    )
    await api.delete(AGENTS, "ns", name)
    assert await eventually(lambda: api.get(AGENTS, "ns", name) is None)


def state_config_map(**content: Any) -> dict[str, Any]:
    """Pod bot-0's state ConfigMap, labelled as the runtime labels it, with `content`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "bot-0-state",
            "namespace": "ns",
            "labels": {"agentry.dev/agent": "bot"},
        },
        **content,
    }


def ready_sts_status(replicas: int) -> dict[str, Any]:
    return {
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "observedGeneration": 0,
            "currentRevision": "r1",
            "updateRevision": "r1",
        }
    }


async def test_a_drifted_statefulset_is_put_back(api: Any, operator: None, eventually: Any) -> None:
    await api.create(AGENTS, agent(replicas=1))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    await api.patch(STS, "ns", "bot", {"spec": {"replicas": 7}})
    assert await eventually(lambda: api.get(STS, "ns", "bot")["spec"]["replicas"] == 1)


def limits_of(api: Any) -> dict[str, Any]:
    data = api.get("v1/configmaps", "ns", "bot-limits")["data"]
    return dict(json.loads(data["limits.json"]))


async def shared_agent(api: Any, eventually: Any) -> dict[str, Any]:
    """Agent bot on postgres, 2 replicas, 10 req/s burst 20; its pod template once created."""
    await api.create("v1/secrets", connection_secret("ns", "postgresql://db/agents"))
    limit = {"requestsPerSecond": 10, "burst": 20}
    await api.create(AGENTS, agent(replicas=2, state=shared_state(), rateLimit=limit))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    assert limits_of(api) == {"requestsPerSecond": 5, "burst": 10}
    return dict(api.get(STS, "ns", "bot")["spec"]["template"])


# kmock does not bump resourceVersion, and kopf may then miss a second quick change of one
# Agent: each test makes one change.


async def test_a_rate_limit_change_rewrites_the_limits_and_rolls_no_pod(
    api: Any, operator: None, eventually: Any
) -> None:
    before = await shared_agent(api, eventually)
    change = {"rateLimit": {"requestsPerSecond": 4, "burst": 8}}
    await api.patch(AGENTS, "ns", "bot", {"metadata": {"generation": 2}, "spec": change})
    assert await eventually(lambda: limits_of(api) == {"requestsPerSecond": 2, "burst": 4})
    assert api.get(STS, "ns", "bot")["spec"]["template"] == before, "no pod rolls"


async def test_a_scale_rewrites_the_limits_and_rolls_no_pod(
    api: Any, operator: None, eventually: Any
) -> None:
    before = await shared_agent(api, eventually)
    await api.patch(AGENTS, "ns", "bot", {"metadata": {"generation": 2}, "spec": {"replicas": 5}})
    assert await eventually(lambda: api.get(STS, "ns", "bot")["spec"]["replicas"] == 5)
    assert limits_of(api) == {"requestsPerSecond": 2, "burst": 4}
    assert api.get(STS, "ns", "bot")["spec"]["template"] == before, "no pod rolls"


async def test_an_env_change_rewrites_the_config_and_rolls_the_pods(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(AGENTS, agent(replicas=1))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    before = api.get(STS, "ns", "bot")["spec"]["template"]["metadata"]["annotations"][HASH]
    await api.patch(
        AGENTS,
        "ns",
        "bot",
        {"metadata": {"generation": 2}, "spec": {"fallback": "reject"}},
    )
    assert await eventually(
        lambda: api.get("v1/configmaps", "ns", "bot-config")["data"]["AGENTRY_FALLBACK"] == "reject"
    )
    assert await eventually(
        lambda: (
            api.get(STS, "ns", "bot")["spec"]["template"]["metadata"]["annotations"][HASH] != before
        )
    )


async def test_an_existing_key_secret_is_adopted_and_never_regenerated(
    api: Any, operator: None, eventually: Any
) -> None:
    keys = {"active-key-id": "azE=", "key.k1": "c2VjcmV0"}
    await api.create(
        "v1/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "bot-keys",
                "namespace": "ns",
                # what the finalizer leaves: the Agent's label and the retained mark
                "labels": {"agentry.dev/retained": "true", "agentry.dev/agent": "bot"},
            },
            "data": keys,
        },
    )
    await api.create(AGENTS, agent())
    assert await eventually(
        lambda: api.get("v1/secrets", "ns", "bot-keys")["metadata"].get("ownerReferences")
    )
    secret = api.get("v1/secrets", "ns", "bot-keys")
    assert secret["data"] == keys
    assert "stringData" not in secret
    assert "agentry.dev/retained" not in secret["metadata"]["labels"]


async def test_heartbeats_and_the_statefulset_become_a_running_status(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create("v1/secrets", connection_secret("ns", "postgresql://db/agents"))
    await api.create(AGENTS, agent(replicas=2, state=shared_state()))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    await api.create("coordination.k8s.io/v1/leases", lease("bot-0", 100, 1))
    await api.create("coordination.k8s.io/v1/leases", lease("bot-1", 50, 0))
    await api.patch(STS, "ns", "bot", ready_sts_status(2))

    def running() -> dict[str, Any] | None:
        status = api.get(AGENTS, "ns", "bot")["status"]
        return status if status["phase"] == "Running" else None

    status = await eventually(running)
    assert status["ready"] == "2/2"
    assert status["metrics"]["requests"] == 150
    assert status["metrics"]["throttled"] == 2
    assert status["lastCheckpoint"]["generation"] == 3
    assert status["endpoint"] == "http://bot.ns.svc:80"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == 1


async def test_an_open_circuit_shows_degraded(api: Any, operator: None, eventually: Any) -> None:
    await api.create(AGENTS, agent(replicas=1))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    await api.create("coordination.k8s.io/v1/leases", lease("bot-0", 10, 0, circuit="open"))
    await api.patch(STS, "ns", "bot", ready_sts_status(1))
    assert await eventually(lambda: api.get(AGENTS, "ns", "bot")["status"]["phase"] == "Degraded")


async def test_an_error_burst_posts_one_webhook_and_one_when_resolved(
    api: Any, operator: None, eventually: Any, webhook: Any
) -> None:
    await api.create(
        "v1/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook", "namespace": "ns"},
            "data": {"url": "aHR0cDovL2hvb2suZXhhbXBsZS9h"},
        },
    )
    await api.create(
        AGENTS,
        agent(
            alerting={
                "errorRateThreshold": 0.2,
                "windowSeconds": 3600,
                "minRequests": 10,
                "webhookSecretRef": {"name": "hook", "key": "url"},
            }
        ),
    )
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    await api.create("coordination.k8s.io/v1/leases", lease("bot-0", 0, 0))
    await api.patch(STS, "ns", "bot", ready_sts_status(1))
    assert await eventually(lambda: api.get(AGENTS, "ns", "bot")["status"]["phase"] == "Running")

    burst = json.loads(lease("bot-0", 100, 60)["metadata"]["annotations"]["agentry.dev/heartbeat"])
    await api.patch(
        "coordination.k8s.io/v1/leases",
        "ns",
        "bot-0-heartbeat",
        {"metadata": {"annotations": {"agentry.dev/heartbeat": json.dumps(burst)}}},
    )
    assert await eventually(lambda: len(webhook.calls) == 1)
    url, body = webhook.calls[0]
    assert url == "http://hook.example/a"
    assert body["status"] == "firing"
    # `next(..., None)`: a StopIteration would escape `eventually` instead of polling again
    # when the webhook is faster than the status write.
    alerting = await eventually(
        lambda: next(
            (
                c
                for c in api.get(AGENTS, "ns", "bot")["status"]["conditions"]
                if c["type"] == "Alerting" and c["status"] == "True"
            ),
            None,
        )
    )
    assert alerting["reason"] == "ErrorRateHigh"

    # Many healthy requests dilute the window below the threshold: resolved, once.
    calm = json.loads(
        lease("bot-0", 10_000, 60)["metadata"]["annotations"]["agentry.dev/heartbeat"]
    )
    await api.patch(
        "coordination.k8s.io/v1/leases",
        "ns",
        "bot-0-heartbeat",
        {"metadata": {"annotations": {"agentry.dev/heartbeat": json.dumps(calm)}}},
    )
    assert await eventually(lambda: len(webhook.calls) == 2)
    assert webhook.calls[1][1]["status"] == "resolved"
    assert len(webhook.calls) == 2


async def test_delete_with_retain_keeps_keys_and_state_and_a_new_agent_adopts_them(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(AGENTS, agent())
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    await api.create("v1/configmaps", state_config_map(binaryData={"commit": "AAAA"}))
    keys_before = api.get("v1/secrets", "ns", "bot-keys")["stringData"]
    await delete_once_finalized(api, eventually)

    secret = api.get("v1/secrets", "ns", "bot-keys")
    state = api.get("v1/configmaps", "ns", "bot-0-state")
    assert secret["metadata"]["labels"]["agentry.dev/retained"] == "true"
    assert "ownerReferences" not in secret["metadata"]
    assert state["metadata"]["labels"]["agentry.dev/retained"] == "true"

    again = agent()
    again["metadata"]["uid"] = "uid-bot-2"
    await api.create(AGENTS, again)
    assert await eventually(
        lambda: (
            api.get("v1/secrets", "ns", "bot-keys")["metadata"]["ownerReferences"][0]["uid"]
            == "uid-bot-2"
        )
    )
    assert api.get("v1/secrets", "ns", "bot-keys")["stringData"] == keys_before
    assert await eventually(
        lambda: (
            "agentry.dev/retained"
            not in (api.get("v1/configmaps", "ns", "bot-0-state")["metadata"].get("labels") or {})
        )
    )


async def test_delete_without_retain_removes_the_state_and_its_high_water_marks(
    api: Any, operator: None, eventually: Any
) -> None:
    """A new Agent of the same name starts empty; an old heartbeat Lease left behind would
    make its runtime read that as a rollback of the old state and refuse in production."""
    await api.create(AGENTS, agent(state={"backend": "configmap", "retainOnDelete": False}))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    labels = {"agentry.dev/agent": "bot"}  # as the runtime labels its objects
    state = {"name": "bot-0-state", "namespace": "ns", "labels": labels}
    await api.create("v1/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": state})
    for pod in ("bot-0", "bot-1"):
        beat = lease(pod, 10, 0)
        beat["metadata"]["labels"] = labels
        await api.create("coordination.k8s.io/v1/leases", beat)
    other = lease("botany-0", 1, 0)  # another Agent's, whose name starts the same
    other["metadata"]["labels"] = {"agentry.dev/agent": "botany"}
    await api.create("coordination.k8s.io/v1/leases", other)
    await delete_once_finalized(api, eventually)

    assert api.get("v1/configmaps", "ns", "bot-0-state") is None
    assert api.get("coordination.k8s.io/v1/leases", "ns", "bot-0-heartbeat") is None
    assert api.get("coordination.k8s.io/v1/leases", "ns", "bot-1-heartbeat") is None
    assert api.get("coordination.k8s.io/v1/leases", "ns", "botany-0-heartbeat") is not None


async def test_closing_the_client_lets_calls_in_flight_finish_and_refuses_later_ones(
    api: Any, kubeconfig: Path
) -> None:
    """kopf runs the cleanup handler (which closes the client) while handlers of events
    already taken may still run: they got aiohttp's "Session is closed" RuntimeError."""
    await api.create(AGENTS, agent())
    kube = await Kube.connect(str(kubeconfig))
    in_flight = asyncio.create_task(kube.get("Agent", "ns", "bot"))
    await asyncio.sleep(0)  # the request is on its way
    await kube.close()
    assert (await in_flight) is not None
    with pytest.raises(KubeError) as refused:
        await kube.get("Agent", "ns", "bot")
    assert refused.value.status == 503


class HeldLeases:
    """Serves one heartbeat Lease; the first read (with the Lease of that moment) waits for
    `release`, as a slow API answer under load would."""

    def __init__(self, lease: dict[str, Any]) -> None:
        self.lease = lease
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.hold_next = False

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        lease = self.lease
        if self.hold_next:
            self.hold_next = False
            self.held.set()
            await self.release.wait()
        return lease


async def test_an_older_heartbeat_read_evaluated_late_does_not_reopen_a_resolved_alert(
    operator_settings: Any,
) -> None:
    """The status timer, the drift timer and the handlers observe one Agent concurrently: a
    read of the burst evaluated after the calm looked like a restart and re-fired."""
    body = agent(alerting={"errorRateThreshold": 0.2, "windowSeconds": 3600, "minRequests": 10})
    bot = Agent.from_body(body)
    leases = HeldLeases(lease("bot-0", 0, 0))
    reconciler = Reconciler(kube=leases, settings=operator_settings)  # type: ignore[arg-type]
    alerts = reconciler.alert_state(bot, {})
    sts = {"spec": {"replicas": 1}}
    await reconciler.observe(bot, {}, alerts, statefulset=sts)
    leases.lease = lease("bot-0", 100, 60)
    await reconciler.observe(bot, {}, alerts, statefulset=sts)
    assert alerts.incident.open

    leases.hold_next = True
    stale = asyncio.create_task(reconciler.observe(bot, {}, alerts, statefulset=sts))
    await leases.held.wait()  # it read the burst
    leases.lease = lease("bot-0", 400, 60)  # 15 % over the window: below the threshold
    calm = asyncio.create_task(reconciler.observe(bot, {}, alerts, statefulset=sts))
    for _ in range(5):
        await asyncio.sleep(0)
    leases.release.set()
    await asyncio.gather(stale, calm)
    assert not alerts.incident.open


async def test_a_missing_connection_secret_is_a_condition_naming_it_until_it_exists(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(AGENTS, agent(replicas=3, state=shared_state("pg-app", "uri")))

    def ready() -> dict[str, Any] | None:
        conditions = ((api.get(AGENTS, "ns", "bot") or {}).get("status") or {}).get("conditions")
        return next((c for c in conditions or [] if c["type"] == "Ready"), None)

    assert await eventually(lambda: (ready() or {}).get("reason") == "ConnectionSecretMissing")
    message = (ready() or {})["message"]
    assert "spec.state.postgres.connectionSecretRef" in message
    assert "'pg-app'" in message
    assert "'uri'" in message
    assert api.get(STS, "ns", "bot") is None, "no pod is built on a Secret that is not there"
    await api.create("v1/secrets", connection_secret("ns", "postgresql://db/x", "pg-app", "other"))
    assert await eventually(lambda: "has no key 'uri'" in (ready() or {}).get("message", ""))
    assert api.get(STS, "ns", "bot") is None
    await api.patch("v1/secrets", "ns", "pg-app", {"data": {"uri": "cG9zdGdyZXNxbDovL2RiL3g="}})
    assert await eventually(lambda: api.get(STS, "ns", "bot"))
    assert await eventually(lambda: (ready() or {}).get("reason") != "ConnectionSecretMissing")


class Leases:
    """Serves heartbeat Leases by name, as the API server does."""

    def __init__(self, leases: dict[str, dict[str, Any]]) -> None:
        self.leases = leases

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.leases.get(name)


async def test_a_replica_that_stopped_beating_is_listed_stale_until_it_beats_again(
    operator_settings: Any,
) -> None:
    """Issue 12's network cut: a pod that cannot reach the API server still runs, and its
    status went on saying Running, with its last metrics gone without a word."""
    bot = Agent.from_body(agent(state=shared_state(), replicas=2))
    leases = Leases({f"{pod}-heartbeat": lease(pod, 5, 0) for pod in ("bot-0", "bot-1")})
    settings = operator_settings.model_copy(update={"heartbeat_stale_seconds": 60})
    later = datetime.now(UTC) + timedelta(seconds=90)
    reconciler = Reconciler(kube=leases, settings=settings, now=lambda: later)  # type: ignore[arg-type]
    sts = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 2}}
    alerts = reconciler.alert_state(bot, {})

    status = (await reconciler.observe(bot, {}, alerts, statefulset=sts)).status
    assert status["staleHeartbeats"] == ["bot-0", "bot-1"]
    assert status["phase"] == "Degraded"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "HeartbeatStale"
    assert "bot-0, bot-1" in degraded["message"]

    for pod in ("bot-0", "bot-1"):  # the cut is over: both beat again
        leases.leases[f"{pod}-heartbeat"] = lease_at(pod, later)
    status = (await reconciler.observe(bot, status, alerts, statefulset=sts)).status
    assert status["staleHeartbeats"] == []
    assert status["phase"] == "Running"

    # Suspended: the pods are gone on purpose, and their old Leases are not news.
    reconciler.now = lambda: later + timedelta(seconds=600)
    suspended = Agent.from_body(agent(state=shared_state(), suspend=True))
    sts = {"spec": {"replicas": 0}, "status": {"replicas": 0}}
    status = (await reconciler.observe(suspended, status, alerts, statefulset=sts)).status
    assert status["staleHeartbeats"] == []
    assert status["phase"] == "Suspended"


def lease_at(pod: str, moment: datetime) -> dict[str, Any]:
    """A heartbeat Lease of `pod` written at `moment`."""
    written = lease(pod, 5, 0)
    annotations = written["metadata"]["annotations"]
    beat = json.loads(annotations["agentry.dev/heartbeat"])
    beat["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations["agentry.dev/heartbeat"] = json.dumps(beat)
    return written


class NamespaceGoingKube(Kube):
    """Reads the key Secret, then lets the namespace's deletion take it and the state
    ConfigMap before the finalizer writes to them (what a deleted namespace does)."""

    api: Any = None

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = await super().get(kind, namespace, name)
        if kind == "Secret":
            await self.api.delete("v1/secrets", namespace, name)
            await self.api.delete("v1/configmaps", namespace, "bot-0-state")
        return found


async def test_the_finalizer_keeps_what_is_left_when_the_namespace_takes_the_rest(
    api: Any, operator_settings: Any
) -> None:
    body = agent()
    await api.create(AGENTS, body)
    plain = await Kube.connect(operator_settings.kubeconfig)
    try:
        await Reconciler(kube=plain, settings=operator_settings).converge(
            Agent.from_body(body), new=True, status={}
        )
    finally:
        await plain.close()
    # The runtime writes its state once it runs (before, it would be state without keys).
    await api.create("v1/configmaps", state_config_map(binaryData={"commit": "AAAA"}))
    kube = await NamespaceGoingKube.connect(operator_settings.kubeconfig)
    kube.api = api
    try:
        # A 404 for the Secret and for the ConfigMap would fail the delete handler, and kopf
        # would hold the Agent's deletion (and so its namespace's) for a minute per retry.
        await Reconciler(kube=kube, settings=operator_settings).finalize(Agent.from_body(body))
    finally:
        await kube.close()
    assert api.get("v1/secrets", "ns", "bot-keys") is None

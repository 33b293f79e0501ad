"""The life of an Agent on the local cluster, as a user of the operator sees it.

The chart installs the operator (the session's `operator` fixture); each test makes its
own Agent in a fresh namespace and talks to its pods directly at their pod IPs (the
process node puts them on a bridge the host can reach). It checks that:
- requests move the status metrics and the printer columns of `kubectl get`;
- the StatefulSet is governed by the headless `<agent>-pods` Service, whose endpoints give
  the pod its DNS hostname, and the pod carries the environment's requests, memory limit
  and spread constraint and runs on the one-node cluster;
- a new `spec.rateLimit` reaches the running pod (no roll: issue 8) and is what it enforces;
- a runtime process killed with SIGKILL is restarted and keeps every acknowledged turn;
- `suspend` writes a final checkpoint and removes the pods, and resuming restores memory;
- deleting an Agent with `retainOnDelete` keeps its key and state, and a new Agent of the
  same name resumes that memory (with either state backend);
- an operator restarted in the middle of reconciling a new Agent converges without
  duplicating any child;
- a deleted pod fails readiness at once but keeps answering for the shutdown delay,
  then closes, and its replacement holds every acknowledged turn.
Both state backends are used: configmap where the state should live in the API server,
pvc where it lives on the pod's volume.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from tests.support.agents import apply_agent
from tests.support.e2e import (
    ProxyReply,
    container_pid,
    get_json,
    is_ready,
    pod_request,
    pod_turn,
    wait_for,
)

pytestmark = pytest.mark.e2e

OPERATOR_NS = "agentry-system"
OPERATOR_SELECTOR = "app.kubernetes.io/name=agentry-operator"
AGENTS = "agents.agentry.dev"
CLIENT = "e2e-lifecycle"


# Helpers ------------------------------------------------------------------------------


def http(
    method: str, url: str, body: Any = None, client: str = CLIENT, timeout: float = 10.0
) -> ProxyReply:
    """One HTTP call to a pod as this module's client."""
    return pod_request(method, url, body, client=client, timeout=timeout)


def patch_spec(cluster: Any, name: str, namespace: str, spec: dict[str, Any]) -> None:
    patch = json.dumps({"spec": spec})
    cluster.kubectl("patch", AGENTS, name, "-n", namespace, "--type=merge", "-p", patch)


def agent_status(cluster: Any, name: str, namespace: str) -> dict[str, Any]:
    body = get_json(cluster, AGENTS, name, "-n", namespace) or {}
    return dict(body.get("status") or {})


def wait_phase(cluster: Any, name: str, namespace: str, phase: str, timeout: float = 180) -> Any:
    def check() -> dict[str, Any] | None:
        status = agent_status(cluster, name, namespace)
        return status if status.get("phase") == phase else None

    return wait_for(check, timeout, f"Agent {name} phase {phase}")


def agent_pods(cluster: Any, name: str, namespace: str) -> list[dict[str, Any]]:
    listing = get_json(cluster, "pods", "-n", namespace, "-l", f"agentry.dev/agent={name}")
    return list((listing or {}).get("items") or [])


def ready_pod(cluster: Any, name: str, namespace: str, timeout: float = 180) -> dict[str, Any]:
    """The Agent's single pod once it is Ready and not being deleted."""

    def check() -> dict[str, Any] | None:
        pods = [p for p in agent_pods(cluster, name, namespace) if is_ready(p)]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return live[0] if len(live) == 1 else None

    pod: dict[str, Any] = wait_for(check, timeout, f"a Ready pod of {name}")
    return pod


def base_url(pod: dict[str, Any]) -> str:
    return f"http://{pod['status']['podIP']}:8080"


def say(url: str, session: str, content: str, client: str = CLIENT) -> ProxyReply:
    return pod_turn(url, session, content, client=client, timeout=10.0)


def remembered(url: str, session: str) -> list[str]:
    """The user turns the pod holds for `session` (empty when it is unknown)."""
    turns: list[str] = []
    after: int | None = 0
    while after is not None:  # every page, as a client reads a long session
        reply = http("GET", f"{url}/v1/sessions/{session}?after={after}")
        if reply.status != 200:
            return turns
        turns += [m["content"] for m in reply.body["messages"] if m["role"] == "user"]
        after = reply.body["next"]
    return turns


def printed_column(cluster: Any, name: str, namespace: str, column: str) -> str:
    """One printer column of `kubectl get agents.agentry.dev NAME -o wide`, as kubectl
    prints it (the counters have priority 1: only the wide output shows them)."""
    printed = cluster.kubectl("get", AGENTS, name, "-n", namespace, "-o", "wide").stdout
    header, row = printed.splitlines()[:2]
    start = header.index(column)
    rest = row[start:]
    return rest.split("  ")[0].strip()


def runtime_pid(pod: dict[str, Any]) -> int:
    """The host pid of the pod's runtime process."""
    return container_pid(pod, b"agentry-runtime")


def checkpoint_time(status: dict[str, Any]) -> datetime | None:
    text = (status.get("lastCheckpoint") or {}).get("time")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


# Tests --------------------------------------------------------------------------------


def test_requests_to_an_agent_show_up_in_its_status_metrics_and_printer_columns(
    operator: Any, namespace: str
) -> None:
    spec = {"state": {"backend": "configmap", "checkpointIntervalSeconds": 30}}
    apply_agent(operator, "counter", namespace, spec)
    url = base_url(ready_pod(operator, "counter", namespace))
    running = wait_phase(operator, "counter", namespace, "Running")
    before = (running.get("metrics") or {}).get("requests", 0)
    printed_before = printed_column(operator, "counter", namespace, "REQUESTS")
    assert printed_before in (str(before), "<none>"), printed_before

    sent = 12
    for turn in range(sent):
        assert say(url, "metrics", f"turn {turn}").status == 200

    def counted() -> dict[str, Any] | None:
        metrics = agent_status(operator, "counter", namespace).get("metrics") or {}
        return metrics if metrics.get("requests", 0) >= before + sent else None

    metrics = wait_for(counted, 60, f"status.metrics.requests >= {before + sent}")
    assert metrics["errors"] == 0
    assert metrics["throttled"] == 0
    assert int(printed_column(operator, "counter", namespace, "REQUESTS")) >= before + sent
    assert printed_column(operator, "counter", namespace, "ERRORS") == "0"


def test_pods_are_governed_by_a_headless_service_and_carry_their_requests(
    operator: Any, namespace: str
) -> None:
    spec = {"environment": "staging", "state": {"backend": "configmap"}}
    apply_agent(operator, "placed", namespace, spec)
    wait_phase(operator, "placed", namespace, "Running")

    sts = get_json(operator, "statefulset", "placed", "-n", namespace)
    governing = get_json(operator, "service", sts["spec"]["serviceName"], "-n", namespace)
    assert governing["metadata"]["name"] == "placed-pods"
    assert governing["spec"]["clusterIP"] == "None"
    client = get_json(operator, "service", "placed", "-n", namespace)
    assert client["spec"]["clusterIP"] not in ("None", "", None)

    pod = ready_pod(operator, "placed", namespace)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "160Mi", "ephemeral-storage": "64Mi"}
    assert resources["limits"] == {"memory": "1440Mi", "ephemeral-storage": "128Mi"}
    spread = pod["spec"]["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread] == [
        ("kubernetes.io/hostname", "ScheduleAnyway")
    ]
    assert pod["spec"]["subdomain"] == "placed-pods"

    def hostnames() -> set[str] | None:
        selector = "kubernetes.io/service-name=placed-pods"
        slices = get_json(operator, "endpointslices", "-n", namespace, "-l", selector)
        names = {
            endpoint.get("hostname")
            for item in slices["items"]
            for endpoint in item.get("endpoints") or []
        }
        return names if names == {"placed-0"} else None

    # What DNS serves as placed-0.placed-pods.<namespace>.svc.
    wait_for(hostnames, 60, "the headless Service's endpoints name the pod")


def test_changing_the_rate_limit_keeps_the_pod_and_the_new_limit_is_enforced(
    operator: Any, namespace: str
) -> None:
    """Issue 8: the limit reaches the running pod through its mounted limits file."""
    spec = {
        "state": {"backend": "pvc", "pvc": {"size": "16Mi"}},
        "rateLimit": {"requestsPerSecond": 50, "burst": 100},
    }
    apply_agent(operator, "limited", namespace, spec)
    before = ready_pod(operator, "limited", namespace)
    old_hash = before["metadata"]["annotations"]["agentry.dev/config-hash"]

    rps, burst = 2.0, 3
    patch_spec(
        operator, "limited", namespace, {"rateLimit": {"requestsPerSecond": rps, "burst": burst}}
    )
    url = base_url(before)

    def reloaded() -> bool:
        # The policy names the tighter bucket, the client's (half) or the replica's: both
        # were 50 or more before the change, and are at most the new burst after it.
        policy = say(url, "probe", "limit?", client="prober").headers.get("RateLimit-Policy", "")
        size = re.search(r"q=(\d+);", policy)
        return size is not None and int(size.group(1)) <= burst

    wait_for(reloaded, 120, "the new limit in RateLimit-Policy", interval=2)
    after = ready_pod(operator, "limited", namespace)
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "the pod was not rolled"
    assert after["metadata"]["annotations"]["agentry.dev/config-hash"] == old_hash
    time.sleep(burst / rps + 0.5)  # the probes' tokens come back: the bucket is full again

    # Offer 20 requests a second for 4 seconds, ten times the new limit, each from a client
    # of its own: no client's bucket (by default half of the replica's) is what refuses them.
    answers: list[ProxyReply] = []
    started = time.monotonic()
    for index in range(80):
        pause = started + index * 0.05 - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        answers.append(say(url, "burst", f"request {index}", client=f"client-{index}"))
    elapsed = time.monotonic() - started

    accepted = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    assert len(accepted) + len(refused) == len(answers), {a.status for a in answers}
    expected = burst + rps * elapsed
    assert expected - 2 <= len(accepted) <= expected + 2, (len(accepted), expected)
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert all(f"q={burst};" in a.headers["RateLimit-Policy"] for a in refused)

    def throttled() -> dict[str, Any] | None:
        metrics = agent_status(operator, "limited", namespace).get("metrics") or {}
        return metrics if metrics.get("throttled", 0) >= len(refused) else None

    wait_for(throttled, 60, f"status.metrics.throttled >= {len(refused)}")


def test_a_runtime_killed_with_sigkill_is_restarted_with_every_acknowledged_turn(
    operator: Any, namespace: str
) -> None:
    spec = {
        "state": {"backend": "pvc", "pvc": {"size": "16Mi"}, "checkpointIntervalSeconds": 5},
        "sessions": {"maxTurns": 0},  # one session takes every turn the writer sends
    }
    apply_agent(operator, "sturdy", namespace, spec)
    pod = ready_pod(operator, "sturdy", namespace)
    url = base_url(pod)
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]

    acknowledged: list[str] = []
    stop = threading.Event()

    def chatter() -> None:
        turn = 0
        while not stop.is_set():
            content = f"turn {turn}"
            turn += 1
            try:
                if say(url, "crash", content).status == 200:
                    acknowledged.append(content)
            except OSError:
                time.sleep(0.2)

    writer = threading.Thread(target=chatter, daemon=True)
    writer.start()
    try:
        wait_for(lambda: len(acknowledged) >= 20, 60, "20 acknowledged turns before the kill")
        os.kill(runtime_pid(pod), signal.SIGKILL)

        def restarted() -> dict[str, Any] | None:
            current = ready_pod(operator, "sturdy", namespace)
            status = current["status"]["containerStatuses"][0]
            return current if status["restartCount"] > restarts else None

        current = wait_for(restarted, 120, "the container restarted and Ready again")
        assert current["metadata"]["uid"] == pod["metadata"]["uid"], "same pod, new process"
        count = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= count + 5, 60, "turns acknowledged after restart")
    finally:
        stop.set()
        writer.join(timeout=30)

    held = remembered(url, "crash")
    missing = [turn for turn in acknowledged if turn not in held]
    assert not missing, f"{len(missing)} acknowledged turns lost: {missing[:5]}"


def test_suspending_checkpoints_and_removes_the_pods_and_resuming_restores_memory(
    operator: Any, namespace: str
) -> None:
    spec = {"state": {"backend": "configmap", "checkpointIntervalSeconds": 3600}}
    apply_agent(operator, "sleeper", namespace, spec)
    url = base_url(ready_pod(operator, "sleeper", namespace))
    wait_phase(operator, "sleeper", namespace, "Running")
    turns = [f"remember {n}" for n in range(5)]
    for turn in turns:
        assert say(url, "nap", turn).status == 200
    before = agent_status(operator, "sleeper", namespace)
    before_time = checkpoint_time(before)
    before_generation = (before.get("lastCheckpoint") or {}).get("generation", -1)

    patch_spec(operator, "sleeper", namespace, {"suspend": True})
    suspended = wait_phase(operator, "sleeper", namespace, "Suspended")
    assert agent_pods(operator, "sleeper", namespace) == []

    def final_checkpoint() -> dict[str, Any] | None:
        status = agent_status(operator, "sleeper", namespace)
        moment = checkpoint_time(status)
        newer = moment is not None and (before_time is None or moment > before_time)
        return status if newer else None

    status = wait_for(final_checkpoint, 60, "a final checkpoint newer than before suspending")
    assert status["lastCheckpoint"]["generation"] > before_generation
    assert suspended["ready"] == "0/0"

    patch_spec(operator, "sleeper", namespace, {"suspend": False})
    url = base_url(ready_pod(operator, "sleeper", namespace))
    wait_phase(operator, "sleeper", namespace, "Running")
    assert remembered(url, "nap") == turns


@pytest.mark.parametrize("backend", ["configmap", "pvc"])
def test_a_deleted_agent_that_retains_its_state_resumes_its_memory_when_recreated(
    operator: Any, namespace: str, backend: str
) -> None:
    state: dict[str, Any] = {"backend": backend, "retainOnDelete": True}
    if backend == "pvc":
        state["pvc"] = {"size": "16Mi"}
    spec = {"state": state}
    apply_agent(operator, "phoenix", namespace, spec)
    url = base_url(ready_pod(operator, "phoenix", namespace))
    turns = [f"keep {n}" for n in range(4)]
    for turn in turns:
        assert say(url, "ashes", turn).status == 200

    operator.kubectl("delete", AGENTS, "phoenix", "-n", namespace, "--timeout=120s")
    wait_for(
        lambda: (
            get_json(operator, "statefulset", "phoenix", "-n", namespace) is None
            and agent_pods(operator, "phoenix", namespace) == []
        ),
        120,
        "the StatefulSet and its pods gone",
    )

    kept = [("secret", "phoenix-keys")]
    if backend == "pvc":
        kept.append(("pvc", "state-phoenix-0"))
    else:
        kept.append(("configmap", "phoenix-0-state"))
    for kind, name in kept:
        obj = get_json(operator, kind, name, "-n", namespace)
        assert obj is not None, f"{kind}/{name} kept"
        assert obj["metadata"]["labels"].get("agentry.dev/retained") == "true", f"{kind}/{name}"
        assert not obj["metadata"].get("ownerReferences"), f"{kind}/{name} has no owner"
    assert get_json(operator, "configmap", "phoenix-config", "-n", namespace) is None

    apply_agent(operator, "phoenix", namespace, spec)
    url = base_url(ready_pod(operator, "phoenix", namespace))
    wait_phase(operator, "phoenix", namespace, "Running")
    assert remembered(url, "ashes") == turns
    uid = get_json(operator, AGENTS, "phoenix", "-n", namespace)["metadata"]["uid"]
    for kind, name in kept:
        obj = get_json(operator, kind, name, "-n", namespace)
        assert "agentry.dev/retained" not in obj["metadata"]["labels"], f"{kind}/{name} adopted"
    # The key Secret is a child again; state never has an owner (the finalizer decides its fate).
    keys = get_json(operator, "secret", "phoenix-keys", "-n", namespace)
    assert [o["uid"] for o in keys["metadata"]["ownerReferences"]] == [uid]


CHILD_KINDS = [
    "serviceaccounts",
    "roles",
    "rolebindings",
    "secrets",
    "configmaps",
    "statefulsets",
    "services",
    "poddisruptionbudgets",
    "pods",
    "persistentvolumeclaims",
]


def children(cluster: Any, name: str, namespace: str) -> dict[str, list[str]]:
    """Names of the Agent's labelled children, by kind."""
    listing = get_json(
        cluster, ",".join(CHILD_KINDS), "-n", namespace, "-l", f"agentry.dev/agent={name}"
    )
    found: dict[str, list[str]] = {}
    for item in (listing or {}).get("items") or []:
        found.setdefault(item["kind"], []).append(item["metadata"]["name"])
    return {kind: sorted(names) for kind, names in sorted(found.items())}


def hold_statefulsets(cluster: Any, namespace: str) -> str:
    """Make the API server refuse new StatefulSets in `namespace` (an admission policy), so
    the operator's converge stops after the ConfigMap and before the StatefulSet."""
    name = f"e2e-hold-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["statefulsets"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "held by the e2e test"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": [policy, binding]}),
    )
    probe = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "serviceName": "probe",
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "none", "command": ["true"]}]},
            },
        },
    }

    def refused() -> bool:
        result = cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
        )
        return result.returncode != 0 and "held by the e2e test" in result.stderr

    wait_for(refused, 30, "the admission policy in force")
    return name


def test_an_operator_restarted_mid_reconcile_converges_without_duplicate_children(
    operator: Any, namespace: str
) -> None:
    old = get_json(operator, "pods", "-n", OPERATOR_NS, "-l", OPERATOR_SELECTOR)["items"]
    assert len(old) == 1
    hold = hold_statefulsets(operator, namespace)
    try:
        spec = {"state": {"backend": "pvc", "pvc": {"size": "16Mi"}}}
        apply_agent(operator, "steady", namespace, spec)
        midway = wait_for(
            lambda: (found := children(operator, "steady", namespace)).get("ConfigMap") and found,
            60,
            "the children before the StatefulSet",
        )
        assert "StatefulSet" not in midway, midway
        operator.kubectl(
            "delete", "pod", "-n", OPERATOR_NS, old[0]["metadata"]["name"], "--wait=false"
        )

        def new_operator_ready() -> bool:
            pods = get_json(operator, "pods", "-n", OPERATOR_NS, "-l", OPERATOR_SELECTOR)
            items = pods["items"]
            fresh = [p for p in items if p["metadata"]["uid"] != old[0]["metadata"]["uid"]]
            return len(items) == 1 and len(fresh) == 1 and is_ready(fresh[0])

        # The hold stays until the new operator runs, so it is the one that finishes.
        wait_for(new_operator_ready, 180, "a new operator pod Ready")
        assert get_json(operator, "statefulset", "steady", "-n", namespace) is None
    finally:
        operator.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            hold,
            "--ignore-not-found",
        )
    wait_phase(operator, "steady", namespace, "Running")

    expected = {
        "ConfigMap": ["steady-config", "steady-limits", "steady-profile"],
        "PersistentVolumeClaim": ["state-steady-0"],
        "Pod": ["steady-0"],
        "Role": ["steady"],
        "RoleBinding": ["steady"],
        "Secret": ["steady-keys"],
        "Service": ["steady", "steady-pods"],
        "ServiceAccount": ["steady"],
        "StatefulSet": ["steady"],
    }
    assert children(operator, "steady", namespace) == expected
    # A drift pass of the new operator (every 10 s here) changes nothing.
    time.sleep(12)
    assert children(operator, "steady", namespace) == expected


def test_a_deleted_pod_fails_readiness_but_keeps_answering_for_the_shutdown_delay(
    operator: Any, namespace: str
) -> None:
    """The review saw /readyz refused 0.3 s after SIGTERM, while proxies still routed here.

    Staging: 5 s of delay, 15 s of drain, a 30 s grace period. The turns are posted at the
    pod's IP, as a proxy that has not yet seen the endpoint removal would.
    """
    spec = {"environment": "staging", "state": {"backend": "configmap"}}
    apply_agent(operator, "polite", namespace, spec)
    pod = ready_pod(operator, "polite", namespace)
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    url = base_url(pod)
    assert say(url, "s", "before").status == 200

    operator.kubectl("delete", "pod", pod["metadata"]["name"], "-n", namespace, "--wait=false")
    wait_for(lambda: http("GET", f"{url}/readyz").status == 500, 30, "readyz failing", 0.1)
    while_unready = say(url, "s", "while unready")
    assert while_unready.status == 200, while_unready.body
    assert http("GET", f"{url}/readyz").status == 500  # still in the delay: unready, serving

    def refused() -> bool:
        try:
            urllib.request.urlopen(f"{url}/livez", timeout=2).close()
        except OSError:
            return True
        return False

    wait_for(refused, 60, "the listener closed after the delay")
    current = ready_pod(operator, "polite", namespace)
    assert current["metadata"]["uid"] != pod["metadata"]["uid"]
    assert remembered(base_url(current), "s") == ["before", "while unready"]

"""A pod cut off from the API server (cluster level).

An Agent on the configmap backend (its state lives in the API server) takes a turn; then
every packet its pod sends to the API server is dropped, in the pod's own network
namespace, until the operator has marked the replica stale (about 20 s; 90 s with
AGENTRY_CHAOS_FULL=1). Meanwhile a turn must be refused
cleanly, 503 `state_unavailable` with Retry-After within the store's 10 s deadline (not a
hang, not a 500), and the operator must list the pod in `status.staleHeartbeats` with
Degraded=True `HeartbeatStale` (the suite's operator counts 20 s without a heartbeat as
stale). Once the cut ends the status clears by itself, turns are taken again, and the
session holds the turns acknowledged before and after, not the refused one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from agentry_cluster import faults
from agentry_cluster.layout import StateLayout

from tests.chaos import fleet
from tests.chaos.conftest import Figure, scaled
from tests.support.agents import agent_manifest, apply_all
from tests.support.e2e import ProxyReply, container_pid, get_json, is_ready, pod_turn, wait_for

pytestmark = pytest.mark.chaos

NAME = "island"


def turn(url: str, content: str) -> ProxyReply:
    # 60 s: a refusal must come from the store's deadline, never from this client's.
    return pod_turn(url, "cut", content, timeout=60)


def ready_pod(cluster: Any, namespace: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        listing = get_json(cluster, "pods", "-n", namespace, "-l", f"{fleet.AGENT_LABEL}={NAME}")
        pods = [p for p in (listing or {}).get("items") or [] if is_ready(p)]
        return pods[0] if len(pods) == 1 else None

    pod: dict[str, Any] = wait_for(check, 180, f"a Ready pod of {NAME}")
    return pod


def status(cluster: Any, namespace: str) -> dict[str, Any]:
    return dict(fleet.agents(cluster, namespace).get(NAME, {}).get("status") or {})


def degraded_reason(current: dict[str, Any]) -> str:
    conditions = current.get("conditions") or []
    return next((c["reason"] for c in conditions if c["type"] == "Degraded"), "")


def test_a_pod_cut_off_from_the_api_server_refuses_writes_is_marked_stale_and_recovers(
    operator: Any, namespace: str, figure: Figure
) -> None:
    spec = {"state": {"backend": "configmap", "checkpointIntervalSeconds": 3600}}
    apply_all(operator, [agent_manifest(NAME, namespace, spec)])
    pod = ready_pod(operator, namespace)
    url = f"http://{pod['status']['podIP']}:8080"
    assert turn(url, "before the cut").status == 200
    fleet.wait_all(operator, namespace, {NAME}, timeout=120)

    layout = StateLayout(operator.state_dir)
    # make test ends the cut once it has been seen: holding it longer checks nothing more.
    cut_seconds = scaled(0, 90)
    with faults.cut_off_from_api_server(layout, container_pid(pod, b"agentry-runtime")):
        cut = time.monotonic()
        during = turn(url, "during the cut")
        refused_after = time.monotonic() - cut

        def stale() -> bool:
            current = status(operator, namespace)
            return current.get("staleHeartbeats") == [f"{NAME}-0"] and (
                degraded_reason(current) == "HeartbeatStale"
            )

        wait_for(stale, 90, "the replica's heartbeat listed stale")
        marked_after = time.monotonic() - cut
        time.sleep(max(0.0, cut_seconds - (time.monotonic() - cut)))
    restored = time.monotonic()
    cut_lasted = restored - cut

    answers = [turn(url, "after the cut")]
    while answers[-1].status != 200 and time.monotonic() - restored < 120:
        time.sleep(1)
        answers.append(turn(url, "after the cut"))
    writes_after = time.monotonic() - restored

    def recovered() -> bool:
        current = status(operator, namespace)
        return current.get("staleHeartbeats") == [] and current.get("phase") == "Running"

    wait_for(recovered, 180, "the status clear of stale heartbeats and Running")
    status_clear_after = time.monotonic() - restored

    figure("cut_s", round(cut_lasted, 1))
    code = (during.body or {}).get("error", {}).get("code")
    figure("turn_during_cut", f"{during.status} {code} in {refused_after:.1f}s")
    figure("heartbeat_marked_stale_after_s", round(marked_after, 1))
    figure("status_clear_after_cut_end_s", round(status_clear_after, 1))
    figure("turns_taken_again_after_cut_end_s", round(writes_after, 1))
    assert during.status == 503, during
    assert code == "state_unavailable"
    assert int(during.headers["Retry-After"]) >= 1
    assert refused_after < 30, "refused promptly, not after TCP gave up"
    assert answers[-1].status == 200, answers[-1]
    history = urllib.request.urlopen(f"{url}/v1/sessions/cut", timeout=30)
    said = [m["content"] for m in json.loads(history.read())["messages"] if m["role"] == "user"]
    assert "before the cut" in said
    assert "after the cut" in said
    assert "during the cut" not in said

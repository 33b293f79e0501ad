"""End to end on the local cluster: the chart installs the operator, which runs on the
process node under its own ServiceAccount (so the chart's RBAC is what it has), and an
Agent becomes children with owner references, Ready pods and status Running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentry"
RELEASE_NS = "agentry-system"

pytestmark = pytest.mark.e2e


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise TimeoutError(f"{what} not reached in {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def operator(cluster: Any) -> Iterator[Any]:
    cluster.helm(
        "upgrade",
        "--install",
        "agentry",
        str(CHART),
        "--namespace",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "operator.statusIntervalSeconds=2",
        "--set",
        "operator.driftIntervalSeconds=10",
        "--set",
        "logLevel=debug",
        "--wait",
        "--timeout",
        "180s",
    )
    try:
        yield cluster
    finally:
        cluster.helm("uninstall", "agentry", "--namespace", RELEASE_NS, check=False)


def get_json(cluster: Any, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_an_agent_becomes_owned_children_ready_pods_and_a_running_status(
    operator: Any, namespace: str
) -> None:
    agent = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "state": {"backend": "configmap", "checkpointIntervalSeconds": 5},
            "rateLimit": {"requestsPerSecond": 20, "burst": 40},
        },
    }
    operator.kubectl("apply", "-f", "-", input=json.dumps(agent))
    uid = get_json(operator, "agents.agentry.dev", "hello", "-n", namespace)["metadata"]["uid"]

    for kind, name in [
        ("serviceaccount", "hello"),
        ("role", "hello"),
        ("rolebinding", "hello"),
        ("secret", "hello-keys"),
        ("configmap", "hello-config"),
        ("statefulset", "hello"),
        ("service", "hello"),
    ]:
        obj = wait_for(
            lambda kind=kind, name=name: get_json(operator, kind, name, "-n", namespace),
            60,
            f"{kind}/{name}",
        )
        owners = obj["metadata"].get("ownerReferences", [])
        assert [o["uid"] for o in owners] == [uid], f"{kind}/{name} is owned by the Agent"

    wait_for(
        lambda: (
            (get_json(operator, "statefulset", "hello", "-n", namespace) or {})
            .get("status", {})
            .get("readyReplicas")
            == 1
        ),
        180,
        "pod Ready",
    )

    def status() -> dict[str, Any]:
        body = get_json(operator, "agents.agentry.dev", "hello", "-n", namespace) or {}
        return dict(body.get("status") or {})

    final = wait_for(
        lambda: status() if status().get("phase") == "Running" else None, 120, "phase Running"
    )
    assert final["ready"] == "1/1"
    ready = next(c for c in final["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert final["endpoint"] == f"http://hello.{namespace}.svc:80"
    printed = operator.kubectl("get", "agents.agentry.dev", "-n", namespace).stdout
    assert "Running" in printed
    assert "1/1" in printed

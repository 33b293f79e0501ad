"""End to end on the local cluster: the chart installs the operator, which runs on the
process node under its own ServiceAccount (so the chart's RBAC is what it has), and an
Agent becomes children with owner references, Ready pods and status Running.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.e2e import get_json, wait_for

pytestmark = pytest.mark.e2e


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
        ("configmap", "hello-limits"),
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

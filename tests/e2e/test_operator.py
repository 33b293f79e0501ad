"""End to end on the local cluster: the chart installs the operator, which runs on the
process node under its own ServiceAccount (so the chart's RBAC is what it has), and an
Agent becomes children with owner references, Ready pods and status Running.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.agents import apply_agent
from tests.support.e2e import get_json, wait_for

pytestmark = pytest.mark.e2e


def test_an_agent_becomes_owned_children_ready_pods_and_a_running_status(
    operator: Any, namespace: str
) -> None:
    spec = {
        "replicas": 1,
        "state": {"backend": "configmap", "checkpointIntervalSeconds": 5},
        "rateLimit": {"requestsPerSecond": 20, "burst": 40},
    }
    apply_agent(operator, "hello", namespace, spec)
    uid = get_json(operator, "agents.agentry.dev", "hello", "-n", namespace)["metadata"]["uid"]

    for kind, name in [
        ("serviceaccount", "hello"),
        ("role", "hello"),
        ("rolebinding", "hello"),
        ("secret", "hello-keys"),
        ("configmap", "hello-config"),
        ("configmap", "hello-limits"),
        ("statefulset", "hello"),
        ("service", "hello-pods"),
        ("networkpolicy", "hello"),
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

    # The endpoint in the status is a name that resolves inside the cluster: a pod in the
    # namespace reaches the runtime through it (cluster DNS, then kube-proxy's rules).
    assert probe_from_a_pod(operator, namespace, final["endpoint"] + "/livez") == "200"


PROBE = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).status)"


def probe_from_a_pod(operator: Any, namespace: str, url: str) -> str:
    """The HTTP status a one-shot pod gets for `url` (its log), or the pod's failure."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "endpoint-probe", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "probe", "image": "python:3.11", "command": ["python3", "-c", PROBE, url]}
            ],
        },
    }
    operator.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def finished() -> str | None:
        body = get_json(operator, "pod", "endpoint-probe", "-n", namespace) or {}
        phase = (body.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, 60, "the probe pod finished")
    output = operator.kubectl("logs", "endpoint-probe", "-n", namespace).stdout.strip()
    return output if phase == "Succeeded" else f"{phase}: {output}"

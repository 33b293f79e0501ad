"""The real API server rejects bad Agent specs, naming the field (schema + CEL rules).

Each case is a spec fragment and a piece of the message kubectl must print. Runs with the
CRD from crds/ against the local cluster (`cluster` fixture); server-side dry-run keeps
the namespace clean.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "agents.agentry.dev.yaml"

pytestmark = pytest.mark.cluster

BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("negative replicas", {"replicas": -1}, "spec.replicas"),
    (
        "burst below rate",
        {"rateLimit": {"requestsPerSecond": 10, "burst": 5}},
        "spec.rateLimit.burst",
    ),
    ("unknown backend", {"state": {"backend": "s3"}}, "spec.state.backend"),
    (
        "pvc settings with the configmap backend",
        {"state": {"backend": "configmap", "pvc": {"size": "1Gi"}}},
        "spec.state.pvc",
    ),
    (
        "openai without apiKeySecretRef",
        {"model": {"provider": "openai", "endpoint": "https://x/v1", "name": "m"}},
        "spec.model.apiKeySecretRef",
    ),
    (
        "threshold above 1",
        {"alerting": {"errorRateThreshold": 1.5}},
        "spec.alerting.errorRateThreshold",
    ),
    (
        "threshold below 0",
        {"alerting": {"errorRateThreshold": -0.1}},
        "spec.alerting.errorRateThreshold",
    ),
    ("unknown environment", {"environment": "prod"}, "spec.environment"),
    ("unknown provider", {"model": {"provider": "gpt"}}, "spec.model.provider"),
    ("auth without tokens", {"auth": {"enabled": True}}, "spec.auth.tokenSecretRef"),
    ("zero maxConcurrent", {"rateLimit": {"maxConcurrent": 0}}, "spec.rateLimit.maxConcurrent"),
    ("endpoint that is not a URL", {"model": {"endpoint": "llm.local"}}, "spec.model.endpoint"),
]


@pytest.fixture(scope="module")
def crd_installed(cluster: Any) -> Any:
    cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/agents.agentry.dev", "--timeout=60s"
    )
    # Discovery catches up a moment after Established.
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "agents.agentry.dev", "-A", check=False).returncode:
        if time.monotonic() > deadline:
            raise TimeoutError("agents.agentry.dev not served")
        time.sleep(0.2)
    return cluster


def _apply(cluster: Any, namespace: str, spec: dict[str, Any], name: str = "bad") -> Any:
    body = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", "-o", "json", input=json.dumps(body), check=False
    )


@pytest.mark.parametrize(("case", "spec", "field"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_the_api_server_rejects_a_bad_spec_naming_the_field(
    crd_installed: Any, namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    result = _apply(crd_installed, namespace, spec)
    assert result.returncode != 0, f"{case}: accepted"
    assert field in result.stderr, result.stderr


def test_a_too_long_name_is_rejected(crd_installed: Any, namespace: str) -> None:
    result = _apply(crd_installed, namespace, {}, name="a" * 41)
    assert result.returncode != 0
    assert "metadata.name" in result.stderr


def test_an_empty_spec_is_accepted_and_defaulted(crd_installed: Any, namespace: str) -> None:
    result = _apply(crd_installed, namespace, {}, name="good")
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert spec["replicas"] == 1
    assert spec["state"]["backend"] == "pvc"
    assert spec["rateLimit"]["maxConcurrent"] == 64

"""The real API server rejects bad Agent specs, naming the field (schema + CEL rules).

Each case is a spec fragment and a piece of the message kubectl must print. Runs with the
CRD from crds/ against the local cluster (`cluster` fixture); server-side dry-run keeps
the namespace clean.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.agents import agent_manifest

pytestmark = pytest.mark.cluster

PG_REF = {"name": "pg", "key": "uri"}
PG = {"connectionSecretRef": PG_REF}

BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("negative replicas", {"replicas": -1}, "spec.replicas"),
    (
        "burst below rate",
        {"rateLimit": {"requestsPerSecond": 10, "burst": 5}},
        "spec.rateLimit.burst",
    ),
    ("unknown backend", {"state": {"backend": "s3"}}, "spec.state.backend"),
    (
        "affinity of an unknown kind",
        {"scheduling": {"affinity": {"nodeAfinity": {}}}},
        "spec.scheduling.affinity",
    ),
    ("node spread sometimes", {"scheduling": {"nodeSpread": "Sometimes"}}, "spec.scheduling"),
    (
        "toleration value with Exists",
        {"scheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "spec.scheduling.tolerations[0].value",
    ),
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
    (
        "endpoint with a password in it",
        {"model": {"endpoint": "https://user:pw@llm.local/v1"}},
        "spec.model.endpoint",
    ),
    ("negative session limit", {"sessions": {"maxTurns": -1}}, "spec.sessions.maxTurns"),
    # Issue 18: what the models refuse, the API server refuses too.
    (
        "zero per-client rate (exclusive bound)",
        {"rateLimit": {"requestsPerSecond": 10, "burst": 10, "perClientRequestsPerSecond": 0}},
        "spec.rateLimit.perClientRequestsPerSecond",
    ),
    (
        "negative per-client rate",
        {"rateLimit": {"requestsPerSecond": 10, "burst": 10, "perClientRequestsPerSecond": -5}},
        "spec.rateLimit.perClientRequestsPerSecond",
    ),
    ("a quantity that is not one", {"resources": {"requests": {"cpu": "lots"}}}, "spec.resources"),
    ("env overriding a setting", {"env": [{"name": "AGENTRY_PORT", "value": "1"}]}, "spec.env"),
    ("env in lower case", {"env": [{"name": "agentry_port", "value": "1"}]}, "spec.env"),
    ("env name twice", {"env": [{"name": "X"}, {"name": "X", "value": "2"}]}, "spec.env"),
    # Issue 16, item 4: without auth any Authorization header would be its own bucket.
    ("token client key without auth", {"rateLimit": {"clientKey": "token"}}, "spec.rateLimit"),
    # Issue 8: postgres needs its Secret; its settings and retention belong to it alone.
    ("postgres without a connection", {"state": {"backend": "postgres"}}, "connectionSecretRef"),
    (
        "postgres settings on pvc",
        {"state": {"backend": "pvc", "postgres": {"connectionSecretRef": PG_REF}}},
        "spec.state.postgres",
    ),
    (
        "retention on configmap",
        {"state": {"backend": "configmap", "retention": "30d"}},
        "retention",
    ),
    (
        "retention that is not a duration",
        {"state": {"backend": "postgres", "postgres": PG, "retention": "a month"}},
        "spec.state.retention",
    ),
    (
        "unknown sslMode",
        {"state": {"backend": "postgres", "postgres": {**PG, "sslMode": "always"}}},
        "spec.state.postgres.sslMode",
    ),
]


def _apply(cluster: Any, namespace: str, spec: dict[str, Any], name: str = "bad") -> Any:
    body = agent_manifest(name, namespace, spec)
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


@pytest.mark.parametrize("backend", ["pvc", "configmap"])
def test_two_replicas_on_a_single_replica_backend_are_refused_naming_postgres(
    crd_installed: Any, namespace: str, backend: str
) -> None:
    result = _apply(crd_installed, namespace, {"replicas": 2, "state": {"backend": backend}})
    assert result.returncode != 0, f"replicas 2 on {backend}: accepted"
    assert "spec.replicas" in result.stderr, result.stderr
    assert "spec.state.backend: postgres" in result.stderr, result.stderr
    defaulted = _apply(crd_installed, namespace, {"replicas": 2})  # the default backend is pvc
    assert "spec.state.backend: postgres" in defaulted.stderr, defaulted.stderr


def test_kubectl_scale_of_a_pvc_agent_past_one_replica_is_refused(
    crd_installed: Any, namespace: str
) -> None:
    body = {"apiVersion": "agentry.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "solo"}}
    crd_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    scaled = crd_installed.kubectl(
        "scale", "agents.agentry.dev/solo", "--replicas=3", "-n", namespace, check=False
    )
    assert scaled.returncode != 0, "scaled a pvc Agent to 3 replicas"
    assert "spec.state.backend: postgres" in scaled.stderr, scaled.stderr


def test_postgres_takes_any_replica_count_and_its_defaults(
    crd_installed: Any, namespace: str
) -> None:
    spec = {"replicas": 5, "state": {"backend": "postgres", "postgres": PG, "retention": "1h30m"}}
    result = _apply(crd_installed, namespace, spec)
    assert result.returncode == 0, result.stderr
    postgres = json.loads(result.stdout)["spec"]["state"]["postgres"]
    assert (postgres["schema"], postgres["poolSize"]) == ("agentry", 10)


@pytest.mark.parametrize("name", ["a" * 53, "1st", "a.b", "end-"])
def test_a_name_no_service_or_pod_could_take_is_rejected(
    crd_installed: Any, namespace: str, name: str
) -> None:
    result = _apply(crd_installed, namespace, {}, name=name)
    assert result.returncode != 0, f"{name}: accepted"
    assert "metadata.name" in result.stderr


def test_the_longest_allowed_name_and_real_quantities_are_accepted(
    crd_installed: Any, namespace: str
) -> None:
    spec = {
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 2}},
        "env": [{"name": "EXTRA", "value": "1"}],
    }
    result = _apply(crd_installed, namespace, spec, name="a" * 52)
    assert result.returncode == 0, result.stderr


def test_scheduling_passes_kubernetes_objects_through_unpruned(
    crd_installed: Any, namespace: str
) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]
            }
        }
    }
    own = {"topologyKey": "example.com/rack", "labelSelector": {"matchLabels": {"a": "b"}}}
    spec = {
        "scheduling": {
            "zoneSpread": "DoNotSchedule",
            "topologySpreadConstraints": [own],
            "nodeSelector": {"pool": "agents"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": affinity,
        }
    }
    result = _apply(crd_installed, namespace, spec)
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["spec"]["scheduling"]
    assert stored["affinity"] == affinity
    assert stored["topologySpreadConstraints"][0]["labelSelector"] == own["labelSelector"]
    assert stored["nodeSpread"] == "ScheduleAnyway"  # the default


def test_header_client_key_with_auth_is_allowed_when_set_explicitly(
    crd_installed: Any, namespace: str
) -> None:
    auth = {"enabled": True, "tokenSecretRef": {"name": "t", "key": "tokens"}}
    for key in ("header", "token"):
        result = _apply(crd_installed, namespace, {"auth": auth, "rateLimit": {"clientKey": key}})
        assert result.returncode == 0, result.stderr
    defaulted = json.loads(_apply(crd_installed, namespace, {"auth": auth}).stdout)
    assert "clientKey" not in defaulted["spec"]["rateLimit"]  # the operator picks token


def _patch_status(cluster: Any, namespace: str, name: str, status: dict[str, Any]) -> Any:
    return cluster.kubectl(
        *("patch", "agents.agentry.dev", name, "-n", namespace, "--subresource=status"),
        *("--type=merge", "-p", json.dumps({"status": status})),
        check=False,
    )


def test_conditions_are_one_per_type_and_wide_output_shows_the_counters(
    crd_installed: Any, namespace: str
) -> None:
    body = {"apiVersion": "agentry.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "wide"}}
    crd_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "AllReplicasReady",
        "message": "",
        "lastTransitionTime": "2026-11-29T00:00:00Z",
    }
    twice = _patch_status(crd_installed, namespace, "wide", {"conditions": [condition] * 2})
    assert twice.returncode != 0
    assert "status.conditions" in twice.stderr, twice.stderr
    not_a_time = {**condition, "lastTransitionTime": "yesterday"}
    bad_time = _patch_status(crd_installed, namespace, "wide", {"conditions": [not_a_time]})
    assert bad_time.returncode != 0
    assert "lastTransitionTime" in bad_time.stderr, bad_time.stderr
    long_reason = {**condition, "reason": "R" * 1025}
    too_long = _patch_status(crd_installed, namespace, "wide", {"conditions": [long_reason]})
    assert too_long.returncode != 0
    assert "reason" in too_long.stderr, too_long.stderr
    narrow = crd_installed.kubectl("get", "agents.agentry.dev", "wide", "-n", namespace).stdout
    wide = crd_installed.kubectl(
        "get", "agents.agentry.dev", "wide", "-n", namespace, "-o", "wide"
    ).stdout
    assert "REQUESTS" not in narrow
    assert all(column in wide for column in ("REQUESTS", "THROTTLED", "ERRORS"))

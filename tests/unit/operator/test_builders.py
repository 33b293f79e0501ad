"""Pure builders: the share of the rate limit, RBAC scope, pod security, hash, PDB, and a
grace period that covers the runtime's shutdown delay, drain and final checkpoint."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from agentry_operator import builders
from agentry_operator.keyrings import Ring, ring_of
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings

from tests.support.agents import shared_state

SETTINGS = OperatorSettings(runtime_image="img:1")


def agent(**spec: Any) -> Agent:
    if spec.get("replicas", 1) > 1:
        spec.setdefault("state", shared_state())  # more than one replica needs postgres
    return Agent.from_body(
        {"metadata": {"name": "bot", "namespace": "ns", "uid": "u1", "generation": 1}, "spec": spec}
    )


def pod_spec(a: Agent) -> dict[str, Any]:
    spec: dict[str, Any] = builders.build_statefulset(a, SETTINGS)["spec"]["template"]["spec"]
    return spec


def limits_of(a: Agent) -> dict[str, Any]:
    data = builders.build_limits_config_map(a)["data"]
    assert list(data) == ["limits.json"]
    parsed: dict[str, Any] = json.loads(data["limits.json"])
    return parsed


def template_hash(a: Agent) -> str:
    config = builders.build_config_map(a)["data"]
    sts = builders.build_statefulset(a, SETTINGS, builders.config_hash(config, None))
    template: dict[str, Any] = sts["spec"]["template"]
    return json.dumps(template, sort_keys=True)


def test_each_replica_enforces_its_share_of_the_agent_limit() -> None:
    limits = limits_of(agent(replicas=3, rateLimit={"requestsPerSecond": 10, "burst": 20}))
    assert limits == {"requestsPerSecond": 3.333333, "burst": 7}


def test_an_explicit_client_limit_is_shared_among_replicas_and_absent_otherwise() -> None:
    limited = {"requestsPerSecond": 40, "burst": 40}
    explicit = {**limited, "perClientRequestsPerSecond": 10, "perClientBurst": 5}
    limits = limits_of(agent(replicas=2, rateLimit=explicit))
    assert (limits["perClientRequestsPerSecond"], limits["perClientBurst"]) == (5, 3)
    default = limits_of(agent(replicas=2, rateLimit=limited))
    assert "perClientRequestsPerSecond" not in default  # the runtime's half-share default


def test_a_limit_of_zero_turns_rate_limiting_off() -> None:
    assert limits_of(agent(replicas=2)) == {"requestsPerSecond": 0, "burst": 0}


def test_a_suspended_agent_keeps_its_share_and_runs_no_pods() -> None:
    a = agent(replicas=2, suspend=True, rateLimit={"requestsPerSecond": 8, "burst": 8})
    assert limits_of(a)["requestsPerSecond"] == 4
    assert builders.build_statefulset(a, SETTINGS)["spec"]["replicas"] == 0
    assert builders.build_pdb(a) is None


def test_the_limits_reach_the_pods_as_a_mounted_file_and_not_as_variables() -> None:
    a = agent(replicas=3, rateLimit={"requestsPerSecond": 9, "burst": 9})
    env = builders.runtime_environment(a)
    assert env["AGENTRY_LIMITS_FILE"] == "/etc/agentry/limits/limits.json"
    assert not [
        name for name in env if name.startswith(("AGENTRY_RATE_LIMIT_RPS", "AGENTRY_RATE_LIMIT_B"))
    ]
    volumes = {v["name"]: v for v in pod_spec(a)["volumes"]}
    assert volumes["limits"]["configMap"]["name"] == "bot-limits"
    mounts = {m["name"]: m for m in pod_spec(a)["containers"][0]["volumeMounts"]}
    assert mounts["limits"] == {
        "name": "limits",
        "mountPath": "/etc/agentry/limits",
        "readOnly": True,
    }


def test_scaling_or_a_new_rate_limit_leaves_the_pod_template_alone() -> None:
    limit = {"requestsPerSecond": 30, "burst": 60}
    three = template_hash(agent(replicas=3, rateLimit=limit))
    assert template_hash(agent(replicas=5, rateLimit=limit)) == three
    assert template_hash(agent(replicas=3, rateLimit={"requestsPerSecond": 3, "burst": 3})) == three
    assert template_hash(agent(replicas=3)) == three
    # What needs a new process still rolls: the image, an env var, the backend.
    assert template_hash(agent(replicas=3, rateLimit=limit, image="img:2")) != three
    assert template_hash(agent(replicas=3, env=[{"name": "X", "value": "1"}])) != three
    assert template_hash(agent(replicas=1, state={"backend": "configmap"})) != template_hash(
        agent(replicas=1)
    )


def test_the_runtime_role_names_only_its_own_state_and_heartbeats() -> None:
    rules = builders.build_role(agent(replicas=1, state={"backend": "configmap"}))["rules"]
    named = [r for r in rules if "resourceNames" in r]
    names = [n for r in named for n in r["resourceNames"]]
    assert "bot-0-state" in names
    assert "bot-0-heartbeat" in names
    assert "bot-1-state" not in names
    assert all(n.startswith("bot-") for n in names)
    unnamed = [r for r in rules if "resourceNames" not in r]
    assert all(r["verbs"] == ["create"] for r in unnamed)


def test_on_postgres_the_runtime_role_grants_heartbeats_and_no_config_map() -> None:
    rules = builders.build_role(agent(replicas=2))["rules"]
    assert {res for r in rules for res in r["resources"]} == {"leases"}
    names = [n for r in rules for n in r.get("resourceNames", [])]
    assert names == ["bot-0-heartbeat", "bot-1-heartbeat"]


def test_a_role_for_zero_replicas_never_grants_every_object() -> None:
    rules = builders.build_role(agent(replicas=0))["rules"]
    assert all(r.get("resourceNames", ["x"]) for r in rules)


def test_agent_pods_run_under_the_restricted_pod_security_profile() -> None:
    spec = pod_spec(agent())
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert isinstance(spec["securityContext"]["runAsUser"], int)
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = spec["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_every_agent_pod_sets_its_command_and_probes() -> None:
    container = pod_spec(agent())["containers"][0]
    assert container["command"] == ["agentry-runtime", "serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["image"] == "img:1"


def test_production_probes_less_eagerly_and_drains_longer_than_development() -> None:
    dev, prod = pod_spec(agent()), pod_spec(agent(environment="production"))
    assert prod["terminationGracePeriodSeconds"] > dev["terminationGracePeriodSeconds"]
    dev_period = dev["containers"][0]["livenessProbe"]["periodSeconds"]
    assert prod["containers"][0]["livenessProbe"]["periodSeconds"] > dev_period


def test_the_pvc_backend_gets_a_claim_template_and_configmap_gets_scratch() -> None:
    pvc = builders.build_statefulset(agent(state={"pvc": {"size": "2Gi"}}), SETTINGS)
    claim = pvc["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    cm = builders.build_statefulset(agent(state={"backend": "configmap"}), SETTINGS)
    assert "volumeClaimTemplates" not in cm["spec"]
    assert {"name": "state", "emptyDir": {"sizeLimit": "16Mi"}} in cm["spec"]["template"]["spec"][
        "volumes"
    ]


def test_secrets_are_mounted_as_files_at_the_contract_paths() -> None:
    a = agent(
        model={
            "provider": "openai",
            "endpoint": "https://x/v1",
            "name": "m",
            "apiKeySecretRef": {"name": "llm", "key": "k"},
        },
        auth={"enabled": True, "tokenSecretRef": {"name": "callers", "key": "t"}},
    )
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(a)["containers"][0]["volumeMounts"]}
    assert mounts["keys"] == "/etc/agentry/keys"
    assert mounts["model-key"] == "/etc/agentry/model"
    assert mounts["auth"] == "/etc/agentry/auth"
    env = builders.runtime_environment(a)
    assert env["AGENTRY_MODEL_API_KEY_FILE"] == "/etc/agentry/model/api-key"
    assert env["AGENTRY_AUTH_TOKENS_FILE"] == "/etc/agentry/auth/tokens"


def test_a_config_or_key_id_change_changes_the_hash_that_rolls_the_pods() -> None:
    ring = Ring("k-1", ("k-1",))
    base = builders.config_hash({"A": "1"}, ring)
    assert base == builders.config_hash({"A": "1"}, Ring("k-1", ("k-1",)))
    assert base != builders.config_hash({"A": "2"}, ring)
    assert base != builders.config_hash({"A": "1"}, Ring("k-2", ("k-1", "k-2")))


def test_new_bytes_under_the_same_key_id_do_not_roll_the_pods() -> None:
    """The hash sees ids only: a running pod keeps the key it loaded."""
    old = ring_of({"data": {"active-key-id": "ay0x", "key.k-1": "eA=="}})
    new = ring_of({"data": {"active-key-id": "ay0x", "key.k-1": "eQ=="}})
    assert builders.config_hash({"A": "1"}, old) == builders.config_hash({"A": "1"}, new)


def test_the_generated_key_is_base64_of_32_random_bytes_under_a_random_id() -> None:
    secret = builders.build_key_secret(agent(), random_bytes=lambda n: b"\x01" * n)
    data = secret["stringData"]
    assert data["active-key-id"] == "k-01010101"
    assert base64.b64decode(data["key.k-01010101"]) == b"\x01" * 32
    ids = {builders.build_key_secret(agent())["stringData"]["active-key-id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"k-[0-9a-f]{8}", i) for i in ids)


def test_a_pdb_protects_agents_with_more_than_one_replica() -> None:
    assert builders.build_pdb(agent(replicas=1)) is None
    pdb = builders.build_pdb(agent(replicas=3))
    assert pdb is not None
    assert pdb["spec"]["maxUnavailable"] == 1


def test_every_child_is_labelled_and_owned_by_the_agent() -> None:
    a = agent(replicas=2)
    children = [
        builders.build_service_account(a),
        builders.build_role(a),
        builders.build_role_binding(a),
        builders.build_config_map(a),
        builders.build_key_secret(a),
        builders.build_statefulset(a, SETTINGS),
        builders.build_pods_service(a),
        builders.build_service(a),
        builders.build_pdb(a),
    ]
    for child in children:
        assert child is not None
        meta = child["metadata"]
        assert meta["labels"]["agentry.dev/agent"] == "bot"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "agentry-operator"
        assert meta["ownerReferences"][0]["uid"] == "u1"


def test_with_auth_on_clients_are_bucketed_by_token_unless_header_is_chosen() -> None:
    """A caller cannot pick its own bucket by default once it must authenticate."""
    auth = {"enabled": True, "tokenSecretRef": {"name": "t", "key": "tokens"}}
    key = "AGENTRY_RATE_LIMIT_CLIENT_KEY"
    assert builders.runtime_environment(agent(auth=auth))[key] == "token"
    assert builders.runtime_environment(agent())[key] == "header"
    explicit = agent(auth=auth, rateLimit={"clientKey": "header"})
    assert builders.runtime_environment(explicit)[key] == "header"


@pytest.mark.parametrize("environment", ["development", "staging", "production"])
def test_the_grace_period_covers_the_shutdown_delay_the_drain_and_a_final_checkpoint(
    environment: str,
) -> None:
    a = agent(environment=environment, auth={"enabled": False})
    env = builders.runtime_environment(a)
    delay = int(env["AGENTRY_SHUTDOWN_DELAY_SECONDS"])
    drain = int(env["AGENTRY_SHUTDOWN_GRACE_SECONDS"])
    assert delay >= (0 if environment == "development" else 5)  # endpoints need to catch up
    assert pod_spec(a)["terminationGracePeriodSeconds"] >= delay + drain + 10


def test_circuit_tuning_reaches_the_runtime_only_when_set() -> None:
    """spec.env may not set AGENTRY_*: the circuit is tuned through typed spec fields."""
    tuned = agent(model={"circuitFailureThreshold": 1000, "circuitOpenSeconds": 2.5})
    env = builders.runtime_environment(tuned)
    assert env["AGENTRY_CIRCUIT_FAILURE_THRESHOLD"] == "1000"
    assert env["AGENTRY_CIRCUIT_OPEN_SECONDS"] == "2.5"
    assert "AGENTRY_CIRCUIT_OPEN_SECONDS" not in builders.runtime_environment(agent())


def test_the_operators_agent_env_reaches_every_agent_container_before_spec_env() -> None:
    settings = OperatorSettings(runtime_image="img:1", agent_env={"AGENTRY_X": "1"})
    a = agent(env=[{"name": "EXTRA", "value": "2"}])
    container = builders.build_statefulset(a, settings)["spec"]["template"]["spec"]["containers"][0]
    names = [var["name"] for var in container["env"]]
    assert names == ["AGENTRY_REPLICA", "AGENTRY_X", "EXTRA"]


def test_session_limits_reach_the_runtime_from_their_fields() -> None:
    env = builders.runtime_environment(
        agent(sessions={"maxTurns": 50, "maxSessionBytes": 1024, "idleTimeoutSeconds": 600})
    )
    assert env["AGENTRY_MAX_TURNS"] == "50"
    assert env["AGENTRY_MAX_SESSION_BYTES"] == "1024"
    assert env["AGENTRY_SESSION_IDLE_TTL_SECONDS"] == "600"
    assert env["AGENTRY_MAX_SESSIONS"] == "10000"  # the default, stated rather than implied


def test_the_runtime_knows_every_setting_the_operator_writes() -> None:
    """pydantic-settings ignores a name it does not know, so a typo would be silent."""
    from agent_runtime.config import Settings

    known = {f"AGENTRY_{name.upper()}" for name in Settings.model_fields}
    auth = {"enabled": True, "tokenSecretRef": {"name": "t", "key": "k"}}
    model = {"circuitFailureThreshold": 3, "circuitOpenSeconds": 2}
    env = builders.runtime_environment(agent(auth=auth, model=model))
    assert set(env) <= known, sorted(set(env) - known)


def test_a_rollback_is_accepted_only_when_the_agent_says_so() -> None:
    accepted = builders.runtime_environment(agent(state={"acceptRollback": True}))
    assert accepted["AGENTRY_ACCEPT_STATE_ROLLBACK"] == "true"
    assert "AGENTRY_ACCEPT_STATE_ROLLBACK" not in builders.runtime_environment(agent())


def test_postgres_settings_reach_the_runtime_and_the_url_only_as_its_secrets_file() -> None:
    state = shared_state("pg-app", "uri")
    state["postgres"].update({"schema": "team_a", "poolSize": 4, "sslMode": "verify-full"})
    a = agent(replicas=3, state={**state, "retention": "30d"})
    env = builders.runtime_environment(a)
    assert env["AGENTRY_STATE_BACKEND"] == "postgres"
    assert env["AGENTRY_POSTGRES_SCHEMA"] == "team_a"
    assert env["AGENTRY_POSTGRES_POOL_SIZE"] == "4"
    assert env["AGENTRY_POSTGRES_SSLMODE"] == "verify-full"
    assert env["AGENTRY_STATE_RETENTION_SECONDS"] == str(30 * 86400)
    assert "AGENTRY_POSTGRES_URL" not in builders.build_config_map(a)["data"]
    assert env["AGENTRY_POSTGRES_URL_FILE"] == "/etc/agentry/postgres/url"
    spec = pod_spec(a)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "postgres"]
    assert volume["secret"]["secretName"] == "pg-app"
    assert volume["secret"]["items"] == [{"key": "uri", "path": "url"}]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "postgres"]
    assert mount == {"name": "postgres", "mountPath": "/etc/agentry/postgres", "readOnly": True}
    assert "subPath" not in mount, "a subPath mount would never see the rotated Secret"
    assert not [e for e in spec["containers"][0]["env"] if "POSTGRES" in e["name"]]


def test_postgres_pods_get_no_volume_claim_and_no_postgres_settings_elsewhere() -> None:
    sts = builders.build_statefulset(agent(replicas=2), SETTINGS)
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["state"]
    pvc_env = builders.runtime_environment(agent())
    assert not [name for name in pvc_env if "POSTGRES" in name or "RETENTION" in name]
    names = [e["name"] for e in pod_spec(agent())["containers"][0]["env"]]
    assert "AGENTRY_POSTGRES_URL" not in names


def test_tool_servers_reach_the_runtime_and_their_header_secrets_only_as_files() -> None:
    tools = [
        {
            "name": "search",
            "url": "http://search.tools.svc:8000/mcp",
            "headersFrom": {"secretRef": {"name": "search-auth", "key": "headers"}},
            "allowedTools": ["lookup"],
        },
        {"name": "clock", "url": "http://clock:8000/mcp", "timeoutSeconds": 5},
    ]
    subject = agent(tools=tools, toolPolicy={"maxSteps": 3})
    env = builders.runtime_environment(subject)
    servers = json.loads(env["AGENTRY_TOOLS"])
    assert [s["name"] for s in servers] == ["search", "clock"]
    assert servers[0]["headersFile"] == "/etc/agentry/tool-headers/search"
    assert "headersFile" not in servers[1]
    assert servers[1]["timeoutSeconds"] == 5
    assert env["AGENTRY_TOOL_MAX_STEPS"] == "3"
    pod = pod_spec(subject)
    volume = next(v for v in pod["volumes"] if v["name"] == "tool-headers")
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "search-auth", "items": [{"key": "headers", "path": "search"}]}}
    ]
    assert "search-auth" not in json.dumps(pod["containers"][0]["env"])


def test_an_agent_without_tools_gets_no_tool_settings() -> None:
    env = builders.runtime_environment(agent())
    assert not [name for name in env if "TOOL" in name]


def test_each_replica_gets_its_share_of_the_token_budget_in_the_limits_file() -> None:
    subject = agent(
        replicas=3,
        rateLimit={"tokensPerMinute": 10000, "perClientTokensPerMinute": 1000},
    )
    assert builders.replica_limits(subject) == {
        "requestsPerSecond": 0,
        "burst": 0,
        "tokensPerMinute": 3334,
        "perClientTokensPerMinute": 334,
    }
    assert "tokensPerMinute" not in builders.replica_limits(agent())

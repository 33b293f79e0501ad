"""The runtime ConfigMaps, the generated key Secret and the hash that rolls the pods.

`<agent>-config` holds the AGENTRY_* variables of docs/architecture.md ("Runtime
settings"); the pods read it with envFrom, and its hash is on the pod template, so a
change rolls them. Two more are mounted as files that the runtime reads again when they
change, so they are left out of the hash: `<agent>-profile` (instructions, description,
skills: editing the instructions does not roll the pods) and `<agent>-limits` (each
replica's share of the Agent's rate limit, divided by the replica count because each
replica enforces its own: `kubectl scale` or a new spec.rateLimit restarts no pod).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from agentry_operator import constants as c
from agentry_operator.builders.common import metadata
from agentry_operator.builders.profiles import profile_for
from agentry_operator.keyrings import Ring, new_key_id
from agentry_operator.models import Agent

HEARTBEAT_INTERVAL_SECONDS = 10


def _number(value: float) -> str:
    """A compact decimal: 5.0 → "5", 2.5 → "2.5", 10/3 → "3.333333"."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def replica_limits(agent: Agent) -> dict[str, float | int]:
    """This replica's share of the Agent-wide limit, as the runtime's limits.json
    (agent_runtime/limits.py): 0 requests per second turns limiting off, and 0 for a
    client field means the runtime's default (half of the replica's bucket)."""
    limit = agent.spec.rate_limit
    if limit.requests_per_second <= 0:
        return {"requestsPerSecond": 0, "burst": 0} | token_limits(agent)
    replicas = max(agent.spec.replicas, 1)
    share: dict[str, float | int] = {
        "requestsPerSecond": _share(limit.requests_per_second, replicas),
        "burst": max(math.ceil(limit.burst / replicas), 1),
    }
    if limit.per_client_requests_per_second is not None:
        share["perClientRequestsPerSecond"] = _share(limit.per_client_requests_per_second, replicas)
    if limit.per_client_burst is not None:
        share["perClientBurst"] = max(math.ceil(limit.per_client_burst / replicas), 1)
    return share | token_limits(agent)


def token_limits(agent: Agent) -> dict[str, float | int]:
    """This replica's share of spec.rateLimit.tokensPerMinute (absent: no token budget);
    it lives in limits.json too, so a new budget or a scale reaches the pods live."""
    limit = agent.spec.rate_limit
    if limit.tokens_per_minute <= 0:
        return {}
    replicas = max(agent.spec.replicas, 1)
    share: dict[str, float | int] = {
        "tokensPerMinute": max(math.ceil(limit.tokens_per_minute / replicas), 1)
    }
    if limit.per_client_tokens_per_minute is not None:
        share["perClientTokensPerMinute"] = max(
            math.ceil(limit.per_client_tokens_per_minute / replicas), 1
        )
    return share


def _share(value: float, replicas: int) -> float | int:
    """value / replicas to six decimals, an int when whole: 10/3 → 3.333333, 8/2 → 4."""
    exact = round(value / replicas, 6)
    return int(exact) if exact.is_integer() else exact


def session_limits(agent: Agent) -> dict[str, str]:
    """The runtime's memory limits; each applies per replica, as the runtime enforces it."""
    sessions = agent.spec.sessions
    return {
        "MAX_TURNS": str(sessions.max_turns),
        "MAX_SESSION_BYTES": str(sessions.max_session_bytes),
        "MAX_SESSIONS": str(sessions.max_sessions),
        "MAX_STATE_BYTES": str(sessions.max_state_bytes),
        "SESSION_IDLE_TTL_SECONDS": str(sessions.idle_timeout_seconds),
    }


def postgres_settings(agent: Agent) -> dict[str, str]:
    """The postgres backend's settings. The URL itself stays in the connection Secret,
    mounted as the file named here (workload.py), never copied into this ConfigMap."""
    state = agent.spec.state
    if state.postgres is None:
        return {}
    env = {
        "POSTGRES_SCHEMA": state.postgres.schema_name,
        "POSTGRES_POOL_SIZE": str(state.postgres.pool_size),
        "STATE_RETENTION_SECONDS": str(state.retention_seconds),
        "POSTGRES_URL_FILE": c.POSTGRES_URL_FILE,
    }
    if state.postgres.ssl_mode is not None:
        env["POSTGRES_SSLMODE"] = state.postgres.ssl_mode
    return env


def tool_settings(agent: Agent) -> dict[str, str]:
    """The tool servers (AGENTRY_TOOLS, JSON) and the tool loop's policy; absent without
    spec.tools, so an Agent without tools gets the config it had before. A header file
    is named after its server under TOOL_HEADERS_DIR (workload.py mounts it)."""
    if not agent.spec.tools:
        return {}
    servers = []
    for tool in agent.spec.tools:
        server: dict[str, object] = {
            "name": tool.name,
            "url": tool.url,
            "timeoutSeconds": tool.timeout_seconds,
        }
        if tool.allowed_tools is not None:
            server["allowedTools"] = list(tool.allowed_tools)
        if tool.headers_from is not None:
            server["headersFile"] = f"{c.TOOL_HEADERS_DIR}/{tool.name}"
        servers.append(server)
    policy = agent.spec.tool_policy
    return {
        "TOOLS": json.dumps(servers, sort_keys=True),
        "TOOL_MAX_STEPS": str(policy.max_steps),
        "TOOL_MAX_PARALLEL": str(policy.max_parallel),
    }


def runtime_environment(agent: Agent) -> dict[str, str]:
    """The AGENTRY_* variables for the runtime, as strings."""
    spec = agent.spec
    profile = profile_for(spec.environment)
    env = {
        "ENVIRONMENT": spec.environment,
        "HOST": "0.0.0.0",  # noqa: S104 - the pod listens on its own network namespace
        "PORT": str(c.HTTP_PORT),
        "AGENT_NAME": agent.name,
        "NAMESPACE": agent.namespace,
        "STATE_BACKEND": spec.state.backend,
        "STATE_DIR": c.STATE_DIR,
        "KEYS_DIR": c.KEYS_DIR,
        "MODEL_PROVIDER": spec.model.provider,
        "MODEL_TIMEOUT_SECONDS": str(spec.model.timeout_seconds),
        "MODEL_MAX_RETRIES": str(spec.model.max_retries),
        "FALLBACK": spec.fallback,
        "LIMITS_FILE": c.LIMITS_FILE,
        "RATE_LIMIT_PER_CLIENT": "true" if spec.rate_limit.per_client else "false",
        "RATE_LIMIT_CLIENT_KEY": spec.effective_client_key,
        "MAX_CONCURRENT": str(spec.rate_limit.max_concurrent),
        "CHECKPOINT_INTERVAL_SECONDS": str(spec.state.checkpoint_interval_seconds),
        **session_limits(agent),
        "PROFILE_DIR": c.PROFILE_DIR,
        **postgres_settings(agent),
        **tool_settings(agent),
        "HEARTBEAT": "lease",
        "HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT_INTERVAL_SECONDS),
        "LOG_LEVEL": profile.log_level,
        "SHUTDOWN_DELAY_SECONDS": str(profile.shutdown_delay_seconds),
        "SHUTDOWN_GRACE_SECONDS": str(profile.drain_seconds),
    }
    if spec.model.endpoint:
        env["MODEL_ENDPOINT"] = spec.model.endpoint
    if spec.model.name:
        env["MODEL_NAME"] = spec.model.name
    if spec.model.api_key_secret_ref is not None:
        env["MODEL_API_KEY_FILE"] = c.MODEL_KEY_FILE
    if spec.model.circuit_failure_threshold is not None:
        env["CIRCUIT_FAILURE_THRESHOLD"] = str(spec.model.circuit_failure_threshold)
    if spec.model.circuit_open_seconds is not None:
        env["CIRCUIT_OPEN_SECONDS"] = _number(spec.model.circuit_open_seconds)
    if spec.auth.enabled:
        env["AUTH_TOKENS_FILE"] = c.AUTH_TOKENS_FILE
    if spec.state.accept_rollback:
        env["ACCEPT_STATE_ROLLBACK"] = "true"
    return {f"AGENTRY_{key}": value for key, value in sorted(env.items())}


def build_config_map(agent: Agent) -> dict[str, Any]:
    """ConfigMap `<agent>-config`, consumed by the pods with envFrom."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(agent, c.config_map_name(agent.name)),
        "data": runtime_environment(agent),
    }


def build_profile_config_map(agent: Agent) -> dict[str, Any]:
    """ConfigMap `<agent>-profile`: the files of the runtime's PROFILE_DIR.

    Inline instructions are its `instructions` key; with `instructionsFrom` the pods mount
    that ConfigMap's key at the same path instead (``workload.py``).
    """
    spec = agent.spec
    skills = [skill.model_dump(mode="json") for skill in spec.skills]
    data = {"description": spec.description, "skills.json": json.dumps(skills, sort_keys=True)}
    if spec.instructions is not None:
        data["instructions"] = spec.instructions
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(agent, c.profile_config_map_name(agent.name)),
        "data": data,
    }


def build_limits_config_map(agent: Agent) -> dict[str, Any]:
    """ConfigMap `<agent>-limits`, mounted by the pods and reloaded when it changes."""
    text = json.dumps(replica_limits(agent), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(agent, c.limits_config_map_name(agent.name)),
        "data": {c.LIMITS_KEY: text},
    }


def build_key_secret(
    agent: Agent, random_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> dict[str, Any]:
    """A fresh key ring `<agent>-keys` under a random id `k-<8 hex>`; created only when
    absent and never regenerated while sealed state needs the old one."""
    key_id = new_key_id(random_bytes)
    key = base64.b64encode(random_bytes(32)).decode("ascii")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(agent, c.keys_secret_name(agent.name)),
        "type": "Opaque",
        "stringData": {"active-key-id": key_id, f"key.{key_id}": key},
    }


def config_hash(config_data: Mapping[str, str], ring: Ring | None) -> str:
    """sha256 over the runtime config and the key ids (not the key bytes): a change rolls
    the pods. The limits ConfigMap is left out: the pods reload it. New bytes under an id
    the pods already hold do not roll them, so a running pod keeps the key it loaded
    instead of restarting onto one that cannot read its state."""
    keys = {"active": ring.active, "ids": list(ring.ids)} if ring else {}
    payload = json.dumps({"config": dict(config_data), "keys": keys}, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()

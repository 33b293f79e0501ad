"""Secrets stay secret, checked on everything the e2e session wrote (runs last: conftest).

An Agent of its own gets a model API key, an auth token and a message, each a fresh
canary; it takes a turn (the model endpoint refuses connections, so the key is sent, fails
and is checked again every 2 s) and the pod's log, the operator's and the control plane's
are scanned for those and for every Secret value the session's earlier tests had (their
key Secrets, tokens, API keys, connection URIs): none may appear, in any spelling
(tests/support/secret_scan.py). The key Secrets' data may not appear in an Event, an
annotation, an Agent's status or a container's env either.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.support.agents import apply_agent
from tests.support.e2e import ServiceProxy, get_json, wait_for
from tests.support.secret_scan import HARVEST, harvest_namespace, log_files, scan

pytestmark = pytest.mark.e2e


def _secret(namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {key: value},
    }


def test_no_log_holds_a_key_token_api_key_or_message_and_no_key_leaves_its_secret(
    operator: Any, namespace: str
) -> None:
    api_key = f"sk-canary-{secrets.token_hex(16)}"
    token = f"tok-canary-{secrets.token_hex(16)}"
    message = f"canary message {secrets.token_hex(8)} about my bank account"
    for obj in (
        _secret(namespace, "llm", "api-key", api_key),
        _secret(namespace, "callers", "tokens", f"canary-client:{token}\n"),
    ):
        operator.kubectl("apply", "-f", "-", input=json.dumps(obj))
    bridge = str(operator.info["bridge_ip"])
    spec = {
        "state": {"backend": "configmap", "checkpointIntervalSeconds": 2},
        # Port 9 of the bridge refuses: the key is sent, fails, and is checked again.
        "model": {
            "provider": "openai",
            "endpoint": f"http://{bridge}:9/v1",
            "name": "m",
            "apiKeySecretRef": {"name": "llm", "key": "api-key"},
            "maxRetries": 0,
        },
        "auth": {"enabled": True, "tokenSecretRef": {"name": "callers", "key": "tokens"}},
    }
    apply_agent(operator, "quiet", namespace, spec)
    wait_for(
        lambda: (
            (get_json(operator, "statefulset", "quiet", "-n", namespace) or {})
            .get("status", {})
            .get("readyReplicas")
        ),
        180,
        "the Agent's pod Ready",
    )
    proxy = ServiceProxy(operator, namespace, "quiet")
    headers = {"X-Agentry-Authorization": f"Bearer {token}"}
    reply = proxy.request("POST", "/v1/sessions/canary/messages", {"content": message}, headers)
    assert reply.status == 200, reply.body
    # A checkpoint (every 2 s) has sealed the message; the key check has run again.
    wait_for(
        lambda: (
            (get_json(operator, "agents.agentry.dev", "quiet", "-n", namespace) or {})
            .get("status", {})
            .get("lastCheckpoint")
        ),
        60,
        "a checkpoint",
    )
    harvest_namespace(operator, namespace)
    HARVEST.add_secret(f"{namespace}/message", message.encode())

    files = log_files(Path(operator.state_dir))
    names = " ".join(str(p) for p in files)
    assert f"{namespace}_quiet-0_" in names, "the agent pod's log is among those scanned"
    assert "agentry-system_agentry-operator-" in names, "so is the operator's"
    assert "kube-apiserver.log" in names
    assert f"{namespace}/Secret/llm:api-key" in HARVEST.secrets
    assert any(label.startswith(f"{namespace}/Secret/quiet-keys:key.") for label in HARVEST.keys)

    leaks = scan(files, HARVEST.secrets)
    assert leaks == [], "\n".join(leaks)
    exposures = HARVEST.key_exposures()
    assert exposures == [], "\n".join(exposures)

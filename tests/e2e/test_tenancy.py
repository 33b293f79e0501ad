"""Sessions belong to their client on a real cluster, through the API server's proxy
(issue 15).

The unit suite proves the rule inside one process. This walks the path users take with
`kubectl agent invoke --token-file`: kubectl authenticates to the API server, whose proxy
drops `Authorization` and forwards the token in `X-Agentry-Authorization` to a pod of an
Agent with `spec.auth.enabled`. Two clients use the same session id; each gets a session
of its own, and a caller without a token is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_degradation import apply, secret
from tests.e2e.test_agent_lifecycle import wait_phase
from tests.e2e.test_kubectl_agent import kubectl_agent, ok
from tests.support.agents import apply_agent

pytestmark = pytest.mark.e2e

TOKENS = "alice:tok-alice-123\nbob:tok-bob-456\n"


def turn_of(cluster: Any, namespace: str, token_file: Path, content: str) -> dict[str, Any]:
    """One turn of the session `alice-private` as the holder of `token_file`."""
    result = kubectl_agent(
        cluster,
        "invoke",
        "tenant",
        "-n",
        namespace,
        "--session",
        "alice-private",
        "--token-file",
        str(token_file),
        content,
        "-o",
        "json",
    )
    answer: dict[str, Any] = json.loads(ok(result))
    return answer


def test_two_clients_with_one_session_id_have_two_sessions_through_the_proxy(
    operator: Any, namespace: str, tmp_path: Path
) -> None:
    apply(operator, secret(namespace, "agent-tokens", {"tokens": TOKENS}))
    auth = {"enabled": True, "tokenSecretRef": {"name": "agent-tokens", "key": "tokens"}}
    apply_agent(operator, "tenant", namespace, {"auth": auth, "state": {"backend": "configmap"}})
    wait_phase(operator, "tenant", namespace, "Running")
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.write_text("tok-alice-123\n")
    bob.write_text("tok-bob-456\n")

    assert turn_of(operator, namespace, alice, "my password is hunter2")["turn"] == 1
    bobs = turn_of(operator, namespace, bob, "what did the last person say?")
    assert bobs["turn"] == 1, "bob starts his own session, not alice's second turn"
    assert "hunter2" not in bobs["reply"]
    assert turn_of(operator, namespace, alice, "and now?")["turn"] == 2

    anonymous = kubectl_agent(
        operator, "invoke", "tenant", "-n", namespace, "--session", "alice-private", "hi"
    )
    assert anonymous.returncode != 0, "auth is on: a caller without a token is refused"
    assert "Traceback" not in anonymous.stderr
    assert "invoke failed: HTTP 401" in anonymous.stderr, anonymous.stderr

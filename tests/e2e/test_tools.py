"""An Agent calls an MCP server running as a pod behind a Service (issue 11).

examples/agent-tools.yaml as a user applies it: the example tool server (`agentry-runtime
tool-server`, a Deployment) behind the Service `example-tools`, and the Agent `helper`
whose spec.tools names `http://example-tools:8000/mcp`, the Service's DNS name in the
namespace (the local cluster runs kube-proxy and CoreDNS, so the pod resolves and reaches
it as in any cluster). Checks: a `/tool` turn through the service proxy runs the tool
and the reply carries its result; `kubectl agent tools` lists the server as ok with the
call counted; the Tokens column of `kubectl get agents.agentry.dev` shows the turn's
tokens once the heartbeat has reached the status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_agent_lifecycle import wait_phase
from tests.e2e.test_kubectl_agent import kubectl_agent, ok
from tests.support.e2e import ServiceProxy, get_json, wait_for

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent-tools.yaml"


def test_an_agent_calls_an_mcp_server_behind_a_service(operator: Any, namespace: str) -> None:
    documents = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    listing = {"apiVersion": "v1", "kind": "List", "items": documents}
    operator.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(listing))
    operator.kubectl(
        "rollout", "status", "deployment/example-tools", "-n", namespace, "--timeout=120s"
    )
    wait_phase(operator, "helper", namespace, "Running")
    proxy = ServiceProxy(operator, namespace, "helper")

    def tool_turn() -> Any:
        reply = proxy.turn("tools", '/tool add {"a": 2, "b": 3}')
        return reply if reply.status == 200 else None

    reply = wait_for(tool_turn, 60, "a tool turn answered 200")
    body = reply.body
    assert body["reply"] == "Tool add returned: 5.0", body
    assert body["toolCalls"][0]["server"] == "example"

    tools = ok(kubectl_agent(operator, "tools", "helper", "-n", namespace))
    add = next(line.split() for line in tools.splitlines() if " add " in f" {line} ")
    assert add[:3] == ["example", "add", "ok"], tools
    assert int(add[3]) >= 1, tools

    def tokens() -> int | None:
        status = (get_json(operator, "agents.agentry.dev", "helper", "-n", namespace) or {}).get(
            "status"
        ) or {}
        counted = int((status.get("metrics") or {}).get("tokens") or 0)
        return counted or None

    counted = wait_for(tokens, 90, "the Agent's status counts tokens")
    table = operator.kubectl("get", "agents.agentry.dev", "helper", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert "TOKENS" in header.split(), header
    assert str(counted) in row.split(), row

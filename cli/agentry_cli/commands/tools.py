"""`kubectl agent tools NAME`: the Agent's MCP tool servers, their tools, health and calls.

Asks the runtime (`GET /v1/tools`) through the API server's service proxy, like
`invoke`, so it needs only the kubeconfig. The replica that answers reports what it
sees: each server's state (`ok`, `connecting`, `failed: <reason>`, `circuit open`) and
the calls it made to each tool since it started. An Agent without replicas, or one the
proxy cannot reach, is an error naming why. Exit code 1 when a server is not `ok`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..environment import Env
from ..errors import EXIT_FAILED, EXIT_OK
from ..formatting import table
from .invoke import SERVICE_PORT, TOKEN_HEADER, parse_reply, read_token


def run(env: Env, args: argparse.Namespace) -> int:
    agent = env.cluster.get_agent(env.namespace, args.name)
    configured = [tool.get("name") for tool in (agent.get("spec") or {}).get("tools") or []]
    headers = {}
    if args.token_file:
        headers[TOKEN_HEADER] = f"Bearer {read_token(Path(args.token_file))}"
    reply = env.cluster.get_through_proxy(
        env.namespace, f"services/{args.name}", SERVICE_PORT, "v1/tools", headers
    )
    servers = parse_reply(reply, args.name).get("servers") or []
    report = {"name": args.name, "configured": configured, "servers": servers}
    env.show(report, render_table)
    healthy = all(server.get("status") == "ok" for server in servers)
    return EXIT_OK if healthy else EXIT_FAILED


def render_table(report: dict[str, Any]) -> str:
    if not report["servers"]:
        return f"Agent {report['name']} has no tool servers (spec.tools is empty)."
    rows = []
    for server in report["servers"]:
        status = server.get("status", "")
        tools = server.get("tools") or []
        if not tools:
            rows.append([server["name"], "-", status, 0, 0])
        for tool in tools:
            name = tool["name"] if tool.get("offered", True) else f"{tool['name']} (shadowed)"
            rows.append([server["name"], name, status, tool.get("calls", 0), tool.get("errors", 0)])
    return table(["SERVER", "TOOL", "STATUS", "CALLS", "ERRORS"], rows)

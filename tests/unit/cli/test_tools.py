"""`kubectl agent tools`: the runtime's tool listing through the service proxy."""

from __future__ import annotations

import json

from agentry_cli.cluster import HttpReply

LISTING = {
    "servers": [
        {
            "name": "calc",
            "url": "http://calc.tools.svc:8000/mcp",
            "status": "ok",
            "timeoutSeconds": 30,
            "tools": [
                {"name": "add", "description": "", "offered": True, "calls": 3, "errors": 1},
                {"name": "echo", "description": "", "offered": True, "calls": 0, "errors": 0},
            ],
        },
        {"name": "search", "url": "http://s/mcp", "status": "failed: ConnectError", "tools": []},
    ]
}


def reply(body: dict, status: int = 200) -> HttpReply:
    return HttpReply(status=status, reason="OK", body=json.dumps(body).encode(), headers={})


def test_tools_lists_each_servers_tools_with_health_and_calls(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply(LISTING))

    result = kubectl_agent("tools", "demo")

    assert fake_cluster.gets == [("services/demo", "http", "v1/tools", {})]
    lines = result.out.splitlines()
    assert lines[0].split() == ["SERVER", "TOOL", "STATUS", "CALLS", "ERRORS"]
    assert lines[1].split() == ["calc", "add", "ok", "3", "1"]
    assert lines[3].split()[:3] == ["search", "-", "failed:"]
    assert result.code == 1  # a server that is not ok


def test_tools_of_an_agent_without_tool_servers_says_so(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply({"servers": []}))

    result = kubectl_agent("tools", "demo")

    assert result.code == 0
    assert "has no tool servers" in result.out


def test_tools_as_json_carries_the_listing(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply(LISTING))

    document = json.loads(kubectl_agent("tools", "demo", "-o", "json").out)

    assert document["servers"][0]["tools"][0]["calls"] == 3

"""The tool loop against a real MCP server (the SDK's MCPServer over streamable HTTP).

Checks: the builtin's ``/tool`` and a scripted OpenAI-compatible model both run the loop;
results are in the session and nothing of them is in clear on disk; a hanging tool hits
its timeout and the model sees the error (200); maxSteps ends the turn; a restarted
server is reconnected; a list-changed notification adds the new tool; auth headers come
from the mounted file; calls show on the native stream, the OpenAI surface and A2A;
/readyz, the heartbeat and the metrics report the tools.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_runtime.a2a_api import RPC_PATH
from agent_runtime.app import record_context
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from agent_runtime.heartbeat import NullPublisher
from agent_runtime.services import SERVICES
from agent_runtime.state import PvcStore
from tests.support.fake_provider import FakeProvider
from tests.support.mcp_server import ToolServer
from tests.support.runtime import MakeClient, make_settings, next_heartbeat

Client = TestClient[Any, Any]


@pytest.fixture
async def tools() -> AsyncIterator[ToolServer]:
    async with ToolServer() as server:
        yield server


def tool_settings(mcp: ToolServer, **extra: Any) -> dict[str, Any]:
    entry = {"name": "calc", "url": mcp.url, "timeoutSeconds": extra.pop("timeout", 5)}
    entry.update(extra.pop("server", {}))
    return {"tools": [entry], **extra}


async def say(client: Client, text: str, session: str = "s1") -> dict[str, Any]:
    response = await client.post(f"/v1/sessions/{session}/messages", json={"content": text})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_the_builtin_tool_command_runs_the_loop_and_the_result_is_sealed_in_memory(
    make_client: MakeClient, tools: ToolServer, tmp_path: Path, keyring: KeyRing
) -> None:
    settings = make_settings(tmp_path, state_backend="pvc", **tool_settings(tools))
    store = PvcStore(tmp_path / "state", keyring, record_context(settings))
    client = await make_client(settings=settings, store=store)
    body = await say(client, '/tool add {"a": 20, "b": 22}')
    assert body["reply"] == "Tool add returned: 42"
    assert body["toolCalls"] == [
        {
            "id": "call_1",
            "name": "add",
            "server": "calc",
            "outcome": "ok",
            "content": "42",
            "arguments": '{"a": 20, "b": 22}',
        }
    ]
    assert tools.calls == [("add", None)]
    session = await (await client.get("/v1/sessions/s1")).json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    stored = client.app[SERVICES].sessions._sessions  # the record lives with the answer
    (messages,) = stored.values()
    record = json.loads(messages[1]["tools"])
    assert record[0]["result"] == "42"
    assert record[0]["arguments"] == '{"a": 20, "b": 22}'
    await client.app[SERVICES].sessions.checkpoint(force=True)
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert on_disk
    assert b"Tool add returned" not in on_disk
    assert b'"a": 20' not in on_disk


async def test_a_hanging_tool_times_out_and_the_model_sees_the_error(
    make_client: MakeClient, tools: ToolServer, tmp_path: Path
) -> None:
    client = await make_client(overrides=tool_settings(tools, timeout=0.5))
    body = await say(client, "/tool hang")
    assert body["reply"] == "Tool hang returned: error: tool hang did not answer within 0.5 s"
    assert body["toolCalls"][0]["outcome"] == "timeout"
    metrics = await (await client.get("/metrics")).text()
    assert 'agentry_runtime_tool_calls_total{outcome="timeout",server="calc",tool="hang"} 1.0' in (
        metrics
    )


async def test_a_scripted_model_asks_for_tools_gets_results_and_answers(
    make_client: MakeClient, tools: ToolServer, tmp_path: Path
) -> None:
    async with FakeProvider() as model:
        model.reply(
            {"role": "assistant", "content": None, "tool_calls": [_call("c1", "add", a=2, b=3)]},
            {"prompt_tokens": 50, "completion_tokens": 10},
        )
        model.reply(
            {"role": "assistant", "content": "The sum is 5."},
            {"prompt_tokens": 70, "completion_tokens": 5},
        )
        overrides = model.runtime_overrides(**tool_settings(tools))
        client = await make_client(overrides=overrides, provider=None)
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "2+3?"}]},
            headers={"X-Agentry-Tool-Calls": "true"},
        )
        assert response.status == 200, await response.text()
        completion = await response.json()
        first, second = (call.body for call in model.completions)
    assert first is not None
    assert second is not None
    assert {t["function"]["name"] for t in first["tools"]} == {"add", "echo", "hang", "grow"}
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "add"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "5"}
    message = completion["choices"][0]["message"]
    assert message["content"] == "The sum is 5."
    assert message["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert message["agentry_tool_results"][0]["content"] == "5"
    assert completion["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 15,
        "total_tokens": 135,
    }


async def test_max_steps_ends_a_turn_whose_model_keeps_asking_for_tools(
    make_client: MakeClient, tools: ToolServer
) -> None:
    async with FakeProvider() as model:
        for n in range(5):
            model.reply(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [_call(f"c{n}", "echo", text="x")],
                }
            )
        overrides = model.runtime_overrides(**tool_settings(tools), tool_max_steps=2)
        client = await make_client(overrides=overrides)
        body = await say(client, "loop forever")
        assert len(model.completions) == 2
    assert "stopped after 2 rounds of tool calls" in body["reply"]
    assert [c["outcome"] for c in body["toolCalls"]] == ["ok", "ok"]


async def test_a_restarted_tool_server_is_reconnected(
    make_client: MakeClient, tools: ToolServer
) -> None:
    client = await make_client(overrides=tool_settings(tools))
    assert (await say(client, '/tool add {"a": 1, "b": 1}'))["reply"] == "Tool add returned: 2"
    await tools.stop()
    await tools.start()  # same port, a new process's sessions: the old one is unknown
    replies = [(await say(client, '/tool add {"a": 2, "b": 2}'))["reply"] for _ in range(2)]
    assert replies[-1] == "Tool add returned: 4"


async def test_a_list_changed_notification_offers_the_new_tool(
    make_client: MakeClient, tools: ToolServer
) -> None:
    client = await make_client(overrides=tool_settings(tools))
    assert (await say(client, '/tool extra {"n": 4}'))["reply"].startswith("There is no tool")
    await say(client, "/tool grow")
    toolbox = client.app[SERVICES].toolbox
    assert toolbox is not None
    for _ in range(100):
        if "extra" in {t.name for t in toolbox.offered()}:
            break
        await __import__("asyncio").sleep(0.05)
    assert (await say(client, '/tool extra {"n": 4}'))["reply"] == "Tool extra returned: 8"


async def test_allowed_tools_limit_the_offer_and_headers_come_from_the_file(
    make_client: MakeClient, tools: ToolServer, tmp_path: Path
) -> None:
    headers = tmp_path / "calc-headers"
    headers.write_text("# mounted from a Secret\nAuthorization: Bearer tool-token\n")
    server = {"allowedTools": ["add"], "headersFile": str(headers)}
    client = await make_client(overrides=tool_settings(tools, server=server))
    assert (await say(client, '/tool echo {"text": "hi"}'))["reply"] == (
        "There is no tool named echo. Tools: add."
    )
    assert (await say(client, '/tool add {"a": 1, "b": 2}'))["reply"] == "Tool add returned: 3"
    assert tools.calls == [("add", "Bearer tool-token")]


async def test_tool_calls_stream_as_native_sse_events_and_a2a_artifacts(
    make_client: MakeClient, tools: ToolServer
) -> None:
    client = await make_client(overrides=tool_settings(tools))
    response = await client.post(
        "/v1/sessions/s1/messages?stream=true", json={"content": '/tool add {"a": 1, "b": 4}'}
    )
    events = [
        line.removeprefix("event: ")
        for line in (await response.text()).splitlines()
        if line.startswith("event: ")
    ]
    assert events == ["tool_call", "tool_result", "delta", "done"]
    a2a = await client.post(
        RPC_PATH,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {
                    "messageId": "m1",
                    "role": "ROLE_USER",
                    "parts": [{"text": '/tool add {"a": 5, "b": 5}'}],
                }
            },
        },
        headers={"A2A-Version": "1.0"},
    )
    task = (await a2a.json())["result"]["task"]
    tool = next(a for a in task["artifacts"] if a["artifactId"].startswith("tool-"))
    assert tool["parts"] == [{"text": "10"}]
    assert tool["metadata"] == {"tool": "add", "server": "calc", "outcome": "ok"}


async def test_readiness_heartbeat_and_metrics_report_the_tools(
    make_client: MakeClient, tools: ToolServer, clock: ManualClock
) -> None:
    publisher = NullPublisher()
    down = {"name": "gone", "url": "http://127.0.0.1:9/mcp", "timeoutSeconds": 1}
    overrides = tool_settings(tools)
    overrides["tools"].append(down)
    client = await make_client(overrides=overrides, publisher=publisher)
    text = await (await client.get("/readyz?verbose")).text()
    tools_line = next(line for line in text.splitlines() if "tools" in line)
    assert tools_line.startswith("[+]tools ok (warning: gone failed: ")
    assert text.endswith("readyz check passed\n")
    beat = await next_heartbeat(publisher, clock)
    assert beat["health"]["tools"].startswith("failed: gone failed: ")
    assert beat["ready"] is True
    await say(client, '/tool add {"a": 1, "b": 1}')
    listing = await (await client.get("/v1/tools")).json()
    calc = listing["servers"][0]
    assert (calc["name"], calc["status"]) == ("calc", "ok")
    add = next(t for t in calc["tools"] if t["name"] == "add")
    assert (add["calls"], add["errors"]) == (1, 0)
    assert listing["servers"][1]["status"].startswith("failed: ")
    metrics = await (await client.get("/metrics")).text()
    assert 'gen_ai_client_token_usage_count{gen_ai_operation_name="chat",' in metrics
    assert "gen_ai_client_operation_duration_seconds_bucket" in metrics


def _call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


async def test_the_example_tool_server_serves_its_three_tools(
    make_client: MakeClient, tmp_path: Path
) -> None:
    from agent_runtime.tools.example_server import build_server

    server = ToolServer()
    server.mcp = build_server()  # the example's tools on the test server's transport
    async with server:
        client = await make_client(overrides=tool_settings(server))
        listing = await (await client.get("/v1/tools")).json()
        assert [t["name"] for t in listing["servers"][0]["tools"]] == [
            "add",
            "word_count",
            "utc_time",
        ]
        body = await say(client, '/tool word_count {"text": "one two three"}')
    assert body["reply"] == "Tool word_count returned: 3"


def test_a_runtime_without_tools_does_not_load_the_mcp_sdk() -> None:
    # A fresh interpreter: this one has imported the SDK for the tests above. The SDK and
    # its dependencies are about 19 MB of every replica's RSS (docs/benchmarks.md).
    probe = (
        "import sys, agent_runtime.lifecycle, agent_runtime.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]", loaded[:300]

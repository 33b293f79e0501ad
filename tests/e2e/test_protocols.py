"""The standard surfaces on a real cluster, through the API server's service proxy
(issue 9).

An Agent with `spec.instructions`, skills and auth on. `kubectl agent invoke --stream`
prints a reply in the instructions' persona that remembers the previous turn; the official
`openai` SDK and the `a2a-sdk` client reach the same Agent through
`/api/v1/namespaces/<ns>/services/<agent>:http/proxy/` over HTTP/2, streamed (twenty
streams: over HTTP/1.1 the proxy cut about one in twenty, golang/go#40747), and
authenticated to the API server by the kubeconfig's client certificate, with the Agent's
own token in `X-Agentry-Authorization` (the proxy drops `Authorization`). Memory carries
across turns on each surface, and an edit of the instructions reaches the pod without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from a2a.client import ClientConfig, create_client
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import GetTaskRequest, Role, SendMessageRequest, TaskState

from tests.e2e.test_agent_degradation import apply, secret
from tests.e2e.test_agent_lifecycle import agent_pods, patch_spec, wait_phase
from tests.e2e.test_kubectl_agent import kubectl_agent, ok
from tests.support.agents import apply_agent

pytestmark = pytest.mark.e2e

TOKENS = "alice:tok-alice-123\n"
ALICE = {"X-Agentry-Authorization": "Bearer tok-alice-123"}
SPEC = {
    "instructions": "You are Ada, the help desk of Example Corp.\nAnswer briefly.",
    "description": "Answers questions about orders",
    "skills": [{"id": "orders", "name": "Order status", "tags": ["orders"]}],
    "auth": {"enabled": True, "tokenSecretRef": {"name": "ada-tokens", "key": "tokens"}},
}


def api_server_client(cluster: Any, tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    """The API server's URL and a TLS context with the kubeconfig's client certificate."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    files = {}
    for name in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
        path = tmp_path / name
        path.write_bytes(base64.b64decode(server.get(name) or user[name]))
        files[name] = str(path)
    context = ssl.create_default_context(cafile=files["certificate-authority-data"])
    context.load_cert_chain(files["client-certificate-data"], files["client-key-data"])
    return server["server"], context


@pytest.fixture
async def proxied(
    operator: Any, namespace: str, tmp_path: Path
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The Agent `ada` running, and (its proxy base URL, an HTTP client for it)."""
    apply(operator, secret(namespace, "ada-tokens", {"tokens": TOKENS}))
    apply_agent(operator, "ada", namespace, SPEC)
    wait_phase(operator, "ada", namespace, "Running")
    server, context = api_server_client(operator, tmp_path)
    base = f"{server}/api/v1/namespaces/{namespace}/services/ada:http/proxy"
    # HTTP/2, as kubectl speaks to the API server: over HTTP/1.1 its proxy cuts a POST's
    # answer now and then (golang/go#40747; docs/protocols.md).
    async with httpx.AsyncClient(verify=context, headers=ALICE, timeout=60, http2=True) as http:
        yield base, http


def invoke(cluster: Any, namespace: str, token: Path, text: str, *extra: str) -> str:
    result = kubectl_agent(
        cluster,
        "invoke",
        "ada",
        "-n",
        namespace,
        "--session",
        "cli",
        "--token-file",
        str(token),
        *extra,
        text,
    )
    return ok(result)


async def test_every_surface_reaches_the_agent_through_the_proxy(
    proxied: tuple[str, httpx.AsyncClient], operator: Any, namespace: str, tmp_path: Path
) -> None:
    base, http = proxied
    token = tmp_path / "token"
    token.write_text("tok-alice-123\n")

    # kubectl agent invoke, then --stream: the persona, and the previous turn remembered.
    invoke(operator, namespace, token, "my order is 4711")
    second = invoke(operator, namespace, token, "where is it?", "--stream")
    assert second.startswith("[Ada, the help desk of Example Corp] ")
    assert "“my order is 4711”" in second

    # The openai SDK and the a2a-sdk client, as turns of one session, streamed.
    api = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", http_client=http)
    session = {"X-Session-ID": "sdk"}
    await api.chat.completions.create(
        model="ada", messages=[{"role": "user", "content": "remember 42"}], extra_headers=session
    )
    for n in range(20):  # over HTTP/1.1 the proxy cut about one stream in twenty
        stream = await api.chat.completions.create(
            model="ada",
            messages=[{"role": "user", "content": f"and? ({n})"}],
            extra_headers=session,
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        before = "remember 42" if n == 0 else f"and? ({n - 1})"
        assert f"(turn {n + 2})" in text, text
        assert f"“{before}”" in text, text
    assert [m.id for m in (await api.models.list()).data] == ["ada"]

    # The card through the proxy, two messages in one context, GetTask.
    config = ClientConfig(httpx_client=http, streaming=True)
    a2a = await create_client(base, client_config=config)
    card = a2a._card  # what the client resolved
    assert card.supported_interfaces[0].url == f"{base}/v1/a2a"
    assert [s.id for s in card.skills] == ["orders"]
    for text in ("my name is Grace", "who am I?"):
        request = SendMessageRequest(
            message=new_text_message(text, context_id="a2a", role=Role.ROLE_USER)
        )
        got = [event async for event in a2a.send_message(request)]
    final = got[-1].status_update  # streamed: the task, its pieces, then the final status
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    pieces = [e.artifact_update.artifact for e in got if e.HasField("artifact_update")]
    assert "“my name is Grace”" in "".join(piece.parts[0].text for piece in pieces)
    task = await a2a.get_task(GetTaskRequest(id=final.task_id))
    assert task.history[0].parts[0].text == "who am I?"
    await a2a.close()


async def test_edited_instructions_reach_the_pod_without_a_restart(
    proxied: tuple[str, httpx.AsyncClient], operator: Any, namespace: str
) -> None:
    base, http = proxied
    before = {p["metadata"]["uid"] for p in agent_pods(operator, "ada", namespace)}
    patch_spec(operator, "ada", namespace, {"instructions": "You are Grace."})

    async def persona() -> str:
        response = await http.post(
            f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        return str(response.json()["choices"][0]["message"]["content"])

    # The kubelet (here the process node) refreshes a ConfigMap volume within a minute.
    reply = ""
    for _ in range(45):
        reply = await persona()
        if reply.startswith("[Grace] "):
            break
        await asyncio.sleep(2)
    assert reply.startswith("[Grace] "), reply
    assert {p["metadata"]["uid"] for p in agent_pods(operator, "ada", namespace)} == before

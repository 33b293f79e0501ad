"""`kubectl agent invoke NAME [--session ID] MESSAGE`: talk to an Agent from kubectl.

The message goes through the API server's service proxy to the Agent's Service port
`http`, so it needs only the kubeconfig (RBAC `create` on `services/proxy`), no
port-forward and no network route to the pods.
"""

from __future__ import annotations

import argparse
import json
import secrets
from typing import Any
from urllib.parse import quote

from ..cluster import HttpReply
from ..environment import Env
from ..errors import Forbidden, OperationFailed

SERVICE_PORT = "http"


def run(env: Env, args: argparse.Namespace) -> int:
    env.cluster.get_agent(env.namespace, args.name)  # a clear error when it does not exist
    session = args.session or f"cli-{secrets.token_hex(4)}"
    path = f"v1/sessions/{quote(session, safe='')}/messages"
    headers = {"X-Client-ID": args.client_id} if args.client_id else {}
    reply = env.cluster.post_to_service(
        env.namespace, args.name, SERVICE_PORT, path, {"content": args.message}, headers
    )
    answer = parse_reply(reply, args.name)
    result = {
        "session": session,
        "reply": answer.get("reply"),
        "degraded": bool(answer.get("degraded", False)),
        "turn": answer.get("turn"),
    }
    if env.structured:
        env.emit_document(result)
    else:
        env.emit(render_reply(result))
        env.note(f"(session {session}, turn {result['turn']}; continue with --session {session})")
    return 0


def render_reply(result: dict[str, Any]) -> str:
    """The reply text, marked `[degraded]` when the fallback answered instead of the model."""
    text = str(result.get("reply") or "")
    return f"[degraded] {text}" if result.get("degraded") else text


def parse_reply(reply: HttpReply, agent: str) -> dict[str, Any]:
    """The JSON answer of a 2xx reply; a one-line `CliError` naming the status otherwise."""
    body = _json(reply.body)
    if 200 <= reply.status < 300:
        if body is None:
            raise OperationFailed(f"Agent {agent} answered HTTP {reply.status} without a JSON body")
        return body
    from_api_server = body is not None and body.get("kind") == "Status"
    detail = _detail(body) if body is not None else ""
    if not detail:
        detail = reply.body.decode("utf-8", errors="replace").strip()[:200]
    retry_after = {k.lower(): v for k, v in reply.headers.items()}.get("retry-after")
    message = f"invoke failed: HTTP {reply.status} {reply.reason}".rstrip()
    if detail:
        message += f": {detail}"
    if retry_after:
        message += f" (retry after {retry_after}s)"
    if from_api_server and reply.status in (401, 403):
        raise Forbidden(message)
    raise OperationFailed(message)


def _detail(body: dict[str, Any]) -> str:
    """The runtime's `{"error": {"code", "message"}}`, or a Kubernetes Status's message."""
    error = body.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return f"{message} ({code})" if code and message else str(message or code or "")
    return str(error or body.get("message") or "")


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None

"""`kubectl agent invoke NAME [--session ID] MESSAGE`: talk to an Agent from kubectl.

The message goes through the API server's proxy to the Agent's Service port `http`
(`services/proxy`), so it needs only the kubeconfig, no port-forward and no network route
to the pods. Any replica serves any session: an Agent with more than one replica keeps
its memory in PostgreSQL, and a single-replica backend has only one pod to ask.

Sessions belong to the client that created them. With `--token-file` the message carries
the user's bearer token, so the session is that token's client's; without it the caller
is the anonymous client, which only an Agent without auth serves. The API server removes
`Authorization` from a request once it has authenticated kubectl, so the token travels
in `X-Agentry-Authorization`, which the runtime reads the same way.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..cluster import HttpReply
from ..environment import Env
from ..errors import Forbidden, OperationFailed, UsageError

SERVICE_PORT = "http"
TOKEN_HEADER = "X-Agentry-Authorization"  # noqa: S105 - a header name; survives the proxy


def run(env: Env, args: argparse.Namespace) -> int:
    env.cluster.get_agent(env.namespace, args.name)  # a clear error when absent
    session = args.session or f"cli-{secrets.token_hex(4)}"
    path = f"v1/sessions/{quote(session, safe='')}/messages"
    headers = {"X-Client-ID": args.client_id} if args.client_id else {}
    if args.token_file:
        headers[TOKEN_HEADER] = f"Bearer {read_token(Path(args.token_file))}"
    reply = env.cluster.post_through_proxy(
        env.namespace,
        f"services/{args.name}",
        SERVICE_PORT,
        path,
        {"content": args.message},
        headers,
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


def read_token(path: Path) -> str:
    """The one token in `path` (surrounding whitespace ignored); a UsageError otherwise."""
    try:
        lines = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"--token-file {path}: cannot read it ({error.__class__.__name__})"
        ) from None
    if len(lines) != 1:
        raise UsageError(f"--token-file {path}: must hold exactly one token")
    return lines[0]


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

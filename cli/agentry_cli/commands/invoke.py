"""`kubectl agent invoke NAME [--session ID] MESSAGE`: talk to an Agent from kubectl.

The message goes through the API server's proxy to the Agent's Service port `http`
(`services/proxy`), so it needs only the kubeconfig, no port-forward and no network route
to the pods. Any replica serves any session: an Agent with more than one replica keeps
its memory in PostgreSQL, and a single-replica backend has only one pod to ask.

With `--stream` the reply is printed as the model writes it (the runtime's
`?stream=true` server-sent events, relayed by the proxy as they come); the turn is stored
only once the reply is complete, so an interrupted `--stream` leaves no half turn.

Sessions belong to the client that created them. With `--token-file` the message carries
the user's bearer token, so the session is that token's client's; without it the caller
is the anonymous client, which only an Agent without auth serves. The API server removes
`Authorization` from a request once it has authenticated kubectl, so the token travels
in `X-Agentry-Authorization`, which the runtime reads the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..cluster import HttpReply
from ..environment import Env
from ..errors import CliError, Forbidden, OperationFailed, Unreachable, UsageError

SERVICE_PORT = "http"
TOKEN_HEADER = "X-Agentry-Authorization"  # noqa: S105 - a header name; survives the proxy


def run(env: Env, args: argparse.Namespace) -> int:
    env.cluster.get_agent(env.namespace, args.name)  # a clear error when absent
    session = args.session or f"cli-{secrets.token_hex(4)}"
    path = f"v1/sessions/{quote(session, safe='')}/messages"
    headers = {"X-Client-ID": args.client_id} if args.client_id else {}
    if args.token_file:
        headers[TOKEN_HEADER] = f"Bearer {read_token(Path(args.token_file))}"
    if args.stream:
        where = (f"services/{args.name}", SERVICE_PORT, path)
        answer = stream_reply(env, args.name, where, args.message, headers)
        return finish(env, session, answer, streamed=True)
    reply = env.cluster.post_through_proxy(
        env.namespace,
        f"services/{args.name}",
        SERVICE_PORT,
        path,
        {"content": args.message},
        headers,
    )
    return finish(env, session, parse_reply(reply, args.name), streamed=False)


def finish(env: Env, session: str, answer: dict[str, Any], *, streamed: bool) -> int:
    """Print the reply (unless its pieces were printed already) and how to continue."""
    result = {
        "session": session,
        "reply": answer.get("reply"),
        "degraded": bool(answer.get("degraded", False)),
        "turn": answer.get("turn"),
    }
    if env.structured:
        env.emit_document(result)
    elif not streamed:
        env.emit(render_reply(result))
    if not env.structured:
        env.note(f"(session {session}, turn {result['turn']}; continue with --session {session})")
    return 0


def stream_reply(
    env: Env, agent: str, where: tuple[str, str, str], message: str, headers: dict[str, str]
) -> dict[str, Any]:
    """Print each `delta` as it arrives (plain output) and return the `done` event."""
    target, port, path = where
    reply = env.cluster.stream_through_proxy(
        env.namespace, target, port, f"{path}?stream=true", {"content": message}, headers
    )
    if not 200 <= reply.status < 300 or "text/event-stream" not in _content_type(reply.headers):
        body = b"".join(reply.lines)
        return parse_reply(HttpReply(reply.status, reply.reason, body, reply.headers), agent)
    printed = [False]
    try:
        done = _print_events(env, reply.lines, printed)
    except Unreachable as error:
        if not printed[0]:
            raise
        env.out.write("\n")
        raise Unreachable(
            f"{error.message} (the stream broke after the reply began: the turn may not be "
            "stored; `kubectl agent invoke` again with the same --session shows its turn number)"
        ) from None
    if done is None:
        raise OperationFailed("invoke failed: the stream ended before the reply was complete")
    # Read the stream to its end: the turn is stored, and a connection closed early makes
    # the API server log an aborted proxy request.
    with contextlib.suppress(CliError):
        for _ in reply.lines:
            pass
    return done


def _print_events(env: Env, lines: Iterator[bytes], printed: list[bool]) -> dict[str, Any] | None:
    """Print each `delta` (plain output); the `done` event, or None if the stream ended."""
    for event, data in sse_events(lines):
        if event == "delta" and not env.structured:
            if not printed[0] and data.get("degraded"):
                env.out.write("[degraded] ")
            env.out.write(str(data.get("delta", "")))
            env.out.flush()
            printed[0] = True
        elif event == "done":
            if printed[0]:
                env.out.write("\n")
                env.out.flush()
            return data
        elif event == "error":
            if printed[0]:
                env.out.write("\n")
            raise OperationFailed(f"invoke failed mid-reply: {_detail(data)} (nothing was stored)")
    return None


def sse_events(lines: Iterator[bytes]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, JSON data) for each server-sent event in `lines`."""
    event, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, _json("\n".join(data).encode()) or {}
            event, data = "message", []
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
    if data:
        yield event, _json("\n".join(data).encode()) or {}


def _content_type(headers: dict[str, str]) -> str:
    return {k.lower(): v for k, v in headers.items()}.get("content-type", "")


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

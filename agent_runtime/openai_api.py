"""The OpenAI-compatible surface: ``GET /v1/models`` and ``POST /v1/chat/completions``.

A thin adapter over ``turns.Turns``: it turns a chat completion request into a turn and
the turn's outcome into a ``chat.completion`` (or, with ``stream: true``, server-sent
``chat.completion.chunk`` objects and ``data: [DONE]``). Auth, limits and errors are the
native API's (the same middlewares, the same status codes, an error body that carries
OpenAI's ``message``, ``type`` and ``code``), so the SDK's ``api_key`` is the bearer token.

- With ``X-Session-ID: <id>`` the call is a turn of the caller's session ``<id>``: the
  last message (which must be the user's) is the new turn, and the history comes from the
  session's memory, not from the request, exactly as ``POST /v1/sessions/{id}/messages``.
- Without it the call is stateless: the request's messages are the conversation, and
  nothing is stored.

The Agent's instructions lead the conversation as the system message either way; a
request's own ``system`` or ``developer`` messages follow them. ``model`` is accepted
whatever it names (the reply always comes from this agent, whose name ``/v1/models``
lists). A degraded reply carries ``"degraded": true`` in the completion and in each
chunk, and the ``X-Agentry-Degraded: true`` header.

The agent runs its tools itself, so a completion normally shows only the final answer
(``finish_reason: stop``). A client that asks with ``X-Agentry-Tool-Calls: true`` also
gets the calls the agent made: in the message's ``tool_calls`` (OpenAI's shape) with
their results in ``agentry_tool_results``, or, streamed, as ``delta.tool_calls`` chunks
and one ``agentry_tool_result`` chunk per result, as they happen.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from agent_runtime.bodies import json_object, text
from agent_runtime.errors import InvalidRequest
from agent_runtime.middleware import DEGRADED
from agent_runtime.middleware.errors import response_for
from agent_runtime.ownership import caller_of
from agent_runtime.providers.base import ChatTurn
from agent_runtime.services import SERVICES
from agent_runtime.sessions import SESSION_ID
from agent_runtime.sse import DEGRADED_HEADER, EventStream
from agent_runtime.tools.loop import OnToolEvent
from agent_runtime.turns import Outcome

openai_routes = web.RouteTableDef()

SESSION_HEADER = "X-Session-ID"
TOOL_CALLS_HEADER = "X-Agentry-Tool-Calls"
MAX_MESSAGES = 1024
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@openai_routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    settings = request.app[SERVICES].settings
    return web.json_response(
        {
            "object": "list",
            "data": [
                {
                    "id": settings.agent_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": settings.namespace,
                }
            ],
        }
    )


@openai_routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await json_object(request)
    conversation = _conversation(body.get("messages"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream", "must be true or false")
    session = _session_id(request)
    if session is not None and conversation[-1]["role"] != "user":
        raise InvalidRequest("messages", "the last message must be the user's")
    completion = _Completion(request)
    if stream:
        return await _streamed(request, completion, conversation, session)
    events: list[dict[str, Any]] = []
    on_event = _collect(events) if _shows_tools(request) else None
    outcome = await _run(request, conversation, session, None, on_event)
    whole = completion.whole(outcome)
    if on_event is not None and events:
        whole["choices"][0]["message"].update(tool_calls_shown(events))
    return web.json_response(whole, headers=_headers(request, outcome))


def _shows_tools(request: web.Request) -> bool:
    return request.headers.get(TOOL_CALLS_HEADER, "").strip().lower() == "true"


def _collect(events: list[dict[str, Any]]) -> OnToolEvent:
    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    return on_event


def tool_calls_shown(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The calls the agent made, as OpenAI ``tool_calls`` plus their results."""
    calls = [
        {
            "id": e["id"],
            "type": "function",
            "function": {"name": e["name"], "arguments": e["arguments"]},
        }
        for e in events
        if e["type"] == "tool_call"
    ]
    results = [
        {
            "tool_call_id": e["id"],
            "name": e["name"],
            "outcome": e["outcome"],
            "content": e["content"],
        }
        for e in events
        if e["type"] == "tool_result"
    ]
    return {"tool_calls": calls, "agentry_tool_results": results}


def _conversation(messages: Any) -> list[ChatTurn]:
    """The request's messages as chat turns; ``param`` names the first thing wrong."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages", "required, a non-empty array")
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest("messages", f"at most {MAX_MESSAGES} messages")
    turns: list[ChatTurn] = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(field, "must be an object with role and content")
        given = message.get("role")
        role = _ROLES.get(given) if isinstance(given, str) else None
        if role is None:
            raise InvalidRequest(f"{field}.role", "must be system, developer, user or assistant")
        turns.append({"role": role, "content": _content(message.get("content"), field)})
    if turns[-1]["role"] != "user":
        raise InvalidRequest("messages", "the last message must be the user's")
    return turns


def _content(content: Any, field: str) -> str:
    """A message's text: a string, or an array of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, list):
        pieces = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(f"{field}.content[{index}]", "only text parts are supported")
            pieces.append(text(part.get("text"), f"{field}.content[{index}].text"))
        if not pieces:
            raise InvalidRequest(f"{field}.content", "must not be empty")
        return "\n".join(pieces)
    return text(content, f"{field}.content")


def _session_id(request: web.Request) -> str | None:
    value = request.headers.get(SESSION_HEADER)
    if value is None:
        return None
    if not SESSION_ID.fullmatch(value):
        raise InvalidRequest(
            SESSION_HEADER, "must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return value


async def _run(
    request: web.Request,
    conversation: list[ChatTurn],
    session: str | None,
    on_delta: Any,
    on_event: OnToolEvent | None,
) -> Outcome:
    turns = request.app[SERVICES].turns
    if session is None:
        return await turns.stateless(conversation, on_delta=on_delta, on_event=on_event)
    question = conversation[-1]["content"]
    return await turns.in_session(
        caller_of(request), session, question, on_delta=on_delta, on_event=on_event
    )


def _headers(request: web.Request, outcome: Outcome) -> dict[str, str]:
    if not outcome.degraded:
        return {}
    request[DEGRADED] = True
    return {DEGRADED_HEADER: "true"}


class _Completion:
    """The ids and names one completion's objects share."""

    def __init__(self, request: web.Request) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = request.app[SERVICES].settings.agent_name

    def _base(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def whole(self, outcome: Outcome) -> dict[str, Any]:
        return {
            **self._base("chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": outcome.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(outcome),
            "degraded": outcome.degraded,
        }

    def chunk(
        self, delta: dict[str, Any], degraded: bool, finish: str | None = None
    ) -> dict[str, Any]:
        return {
            **self._base("chat.completion.chunk"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "degraded": degraded,
        }


def _usage(outcome: Outcome) -> dict[str, int]:
    usage = outcome.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def _streamed(
    request: web.Request,
    completion: _Completion,
    conversation: list[ChatTurn],
    session: str | None,
) -> web.StreamResponse:
    """SSE chunks as the model writes; the last carries ``finish_reason`` and ``usage``."""
    stream = EventStream(request)

    async def on_delta(piece: str, degraded: bool) -> None:
        if not stream.started:
            if degraded:
                request[DEGRADED] = True
                stream.headers[DEGRADED_HEADER] = "true"
            await stream.send(completion.chunk({"role": "assistant", "content": ""}, degraded))
        await stream.send(completion.chunk({"content": piece}, degraded))

    calls = 0

    async def on_event(event: dict[str, Any]) -> None:
        nonlocal calls
        if not stream.started:
            await stream.send(completion.chunk({"role": "assistant", "content": ""}, False))
        if event["type"] == "tool_call":
            call = {
                "index": calls,
                "id": event["id"],
                "type": "function",
                "function": {"name": event["name"], "arguments": event["arguments"]},
            }
            calls += 1
            await stream.send(completion.chunk({"tool_calls": [call]}, False))
        else:
            shown = tool_calls_shown([event])["agentry_tool_results"][0]
            await stream.send({**completion.chunk({}, False), "agentry_tool_result": shown})

    events = on_event if _shows_tools(request) else None
    try:
        outcome = await _run(request, conversation, session, on_delta, events)
    except ConnectionResetError:
        return stream.response or web.Response(status=499)
    except Exception as error:
        if not stream.started:
            raise
        return await stream.end(json.loads(response_for(request, error).text or "{}"))
    last = completion.chunk({}, outcome.degraded, finish="stop")
    last["usage"] = _usage(outcome)
    return await stream.end(last, "[DONE]")

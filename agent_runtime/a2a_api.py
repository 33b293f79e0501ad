"""A2A 1.0 on every agent: the agent card and the JSON-RPC binding, over ``turns.Turns``.

The card is at ``/.well-known/agent-card.json`` (and ``/.well-known/agent.json``, where
0.3 clients look), public like any A2A card. The JSON-RPC endpoint is ``/v1/a2a``, behind
the same middlewares as every ``/v1/`` path (bearer auth, rate and concurrency limits,
body limit). Requests need ``A2A-Version: 1.x``. Methods: ``SendMessage``,
``SendStreamingMessage`` (SSE), ``GetTask``, ``CancelTask``. The wire types are the
official ``a2a-sdk``'s (its protobuf messages and JSON mapping); the dispatch is ours
because the SDK's server is Starlette and this runtime is aiohttp.

A2A's ``contextId`` is the caller's session id, so memory carries across the messages of
one context, exactly as on the native and OpenAI surfaces; a message without one starts a
new session. Every message is one turn, so its task completes within the call.

Tasks are not stored apart from the session: a task id is ``<contextId>~<turn>``, and
``GetTask`` answers from that turn of the caller's session memory. Whichever replica
serves ``GetTask`` answers it as well as the session's memory can be read there (every
replica on a shared state backend), nothing is kept per replica, and deleting the
session deletes its tasks. ``CancelTask`` of a task that exists is ``TaskNotCancelable``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    CancelTaskRequest,
    GetTaskRequest,
    HTTPAuthSecurityScheme,
    Message,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    StringList,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    InvalidParamsError,
    InvalidRequestError,
    MethodNotFoundError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
    VersionNotSupportedError,
)
from aiohttp import web
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message as Proto

from agent_runtime import __version__
from agent_runtime.bodies import text
from agent_runtime.errors import InvalidRequest, RequestError
from agent_runtime.middleware import DEGRADED
from agent_runtime.ownership import caller_of
from agent_runtime.services import SERVICES, Services
from agent_runtime.sessions import SESSION_ID
from agent_runtime.sse import DEGRADED_HEADER, EventStream
from agent_runtime.tools.loop import OnToolEvent
from agent_runtime.turns import Outcome, Usage

a2a_routes = web.RouteTableDef()

RPC_PATH = "/v1/a2a"
VERSION_HEADER = "A2A-Version"
PROTOCOL_VERSION = "1.0"
TASK_SEPARATOR = "~"
REPLY_ARTIFACT = "reply"
SERVER_ERROR = -32000  # JSON-RPC's implementation-defined range; A2A uses -32001..-32009


# -- the card ---------------------------------------------------------------------------


@a2a_routes.get("/.well-known/agent-card.json")
@a2a_routes.get("/.well-known/agent.json")
async def agent_card(request: web.Request) -> web.Response:
    return web.json_response(MessageToDict(build_card(request)))


def build_card(request: web.Request) -> AgentCard:
    services = request.app[SERVICES]
    settings = services.settings
    profile = services.turns.profile.current()
    card = AgentCard(
        name=settings.agent_name,
        description=profile.description or f"Agentry agent {settings.agent_name}",
        version=__version__,
        supported_interfaces=[
            AgentInterface(
                url=public_base(request) + RPC_PATH,
                protocol_binding="JSONRPC",
                protocol_version=PROTOCOL_VERSION,
            )
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id=s.id, name=s.name, description=s.description, tags=s.tags)
            for s in profile.skills
        ]
        or [DEFAULT_SKILL],
    )
    if services.tokens is not None:
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer"))
        )
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card


DEFAULT_SKILL = AgentSkill(
    id="chat",
    name="Conversation",
    description="Answers messages and remembers the conversation of each context",
    tags=["chat"],
)


def public_base(request: web.Request) -> str:
    """Where clients reach this agent: ``PUBLIC_URL``, else what the request says.

    Behind a proxy that rewrites the path, ``X-Forwarded-Prefix`` or ``X-Forwarded-Uri``
    tells the prefix. The Kubernetes API server's service and pod proxy sends its own
    address as ``Host`` and the path it was asked for as ``X-Forwarded-Uri``, but no
    ``X-Forwarded-Proto``; it only serves HTTPS, so a path of that proxy means https. The
    card only points the asking client back at the address it used.
    """
    configured = request.app[SERVICES].settings.public_url
    if configured:
        return configured.rstrip("/")
    headers = request.headers
    host = headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    prefix = headers.get("X-Forwarded-Prefix", "")
    forwarded_uri = headers.get("X-Forwarded-Uri", "")
    if not prefix and forwarded_uri.endswith(request.path):
        prefix = forwarded_uri[: len(forwarded_uri) - len(request.path)]
    scheme = headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    if not scheme:
        scheme = "https" if KUBERNETES_PROXY.match(prefix) else request.scheme
    return f"{scheme}://{host}{prefix.rstrip('/')}"


KUBERNETES_PROXY = re.compile(r"/api/v1/namespaces/[^/]+/(services|pods)/[^/]+/proxy$")


# -- JSON-RPC ---------------------------------------------------------------------------

Handler = Callable[[web.Request, Any, Any], Awaitable[web.StreamResponse]]


@a2a_routes.post(RPC_PATH)
async def rpc(request: web.Request) -> web.StreamResponse:
    try:
        body = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _error(None, A2AError("body: must be a JSON-RPC request (JSON)"), 400, -32700)
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        return _error(None, InvalidRequestError("body: must be a JSON-RPC 2.0 request object"), 400)
    request_id = body.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        return _error(None, InvalidRequestError("id: must be a string, a number or null"), 400)
    method = body.get("method")
    entry = METHODS.get(method) if isinstance(method, str) else None
    if entry is None:
        return _error(request_id, MethodNotFoundError(f"method: {method!r} is not served here"))
    try:
        _check_version(request)
        params = ParseDict(body.get("params") or {}, entry[0](), ignore_unknown_fields=True)
    except A2AError as error:
        return _error(request_id, error)
    except Exception as error:  # the protobuf JSON parser's ParseError and friends
        return _error(request_id, InvalidParamsError(f"params: {error}"))
    try:
        return await entry[1](request, request_id, params)
    except A2AError as error:
        return _error(request_id, error)
    except InvalidRequest as error:
        return _error(request_id, InvalidParamsError(error.message))
    except RequestError as error:
        return web.json_response(_server_error(request_id, error))


def _check_version(request: web.Request) -> None:
    version = request.headers.get(VERSION_HEADER, "").strip()
    if version.split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
        raise VersionNotSupportedError(
            f"{VERSION_HEADER}: this agent speaks A2A {PROTOCOL_VERSION}; "
            f"send the header {VERSION_HEADER}: {PROTOCOL_VERSION} (got {version or 'none'})"
        )


def _error(
    request_id: Any, error: A2AError, status: int = 200, code: int | None = None
) -> web.Response:
    body = build_error_response(request_id, error)
    if code is not None:
        body["error"]["code"] = code
    return web.json_response(body, status=status)


def _server_error(request_id: Any, error: RequestError) -> dict[str, Any]:
    """One of our refusals (a quota, the model unavailable) as a JSON-RPC error."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": SERVER_ERROR,
            "message": error.message,
            "data": {"code": error.code, "status": error.status},
        },
    }


def _result(request_id: Any, result: Proto) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": MessageToDict(result)}


# -- the methods ------------------------------------------------------------------------


async def send_message(
    request: web.Request, request_id: Any, params: SendMessageRequest
) -> web.Response:
    turn = await _Turn.of(request, params)
    results: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "tool_result":
            results.append(event)

    outcome = await turn.run(None, on_event)
    headers = _degraded(request, outcome.degraded)
    task = turn.task(outcome)
    task.artifacts.extend(turn.tool_artifact(event).artifact for event in results)
    return web.json_response(_result(request_id, SendMessageResponse(task=task)), headers=headers)


async def send_streaming_message(
    request: web.Request, request_id: Any, params: SendMessageRequest
) -> web.StreamResponse:
    """The task (working), the reply in artifact pieces, then its completed status."""
    turn = await _Turn.of(request, params)
    stream = EventStream(request)

    async def send(event: StreamResponse) -> None:
        await stream.send(_result(request_id, event))

    async def on_delta(piece: str, degraded: bool) -> None:
        if not stream.started:
            stream.headers.update(_degraded(request, degraded))
            turn.number = await turn.services.turns.next_turn(turn.caller, turn.context_id)
            await send(StreamResponse(task=turn.working()))
        await send(StreamResponse(artifact_update=turn.piece(piece)))
        turn.pieces += 1

    async def on_event(event: dict[str, Any]) -> None:
        if not stream.started:
            turn.number = await turn.services.turns.next_turn(turn.caller, turn.context_id)
            await send(StreamResponse(task=turn.working()))
        if event["type"] == "tool_call":
            await send(StreamResponse(status_update=turn.calling(event)))
        else:
            await send(StreamResponse(artifact_update=turn.tool_artifact(event)))

    try:
        outcome = await turn.run(on_delta, on_event)
    except ConnectionResetError:
        return stream.response or web.Response(status=499)
    except Exception as error:
        if not stream.started:
            raise
        failure = error if isinstance(error, RequestError) else RequestError("internal error")
        return await stream.end(_server_error(request_id, failure))
    return await stream.end(
        _result(request_id, StreamResponse(status_update=turn.completed(outcome)))
    )


async def get_task(request: web.Request, request_id: Any, params: GetTaskRequest) -> web.Response:
    services = request.app[SERVICES]
    context_id, number = _task_id(params.id)
    stored = await services.turns.session_turn(caller_of(request), context_id, number)
    if stored is None:
        raise TaskNotFoundError(f"id: task {params.id!r} does not exist")
    question, answer = stored
    turn = _Turn(services, caller_of(request), context_id, Message())
    turn.number = number
    turn.message = _user_message(question, turn.task_id)
    task = turn.task(Outcome(answer, False, Usage(0, 0), number), degraded_known=False)
    return web.json_response(_result(request_id, task))


async def cancel_task(
    request: web.Request, request_id: Any, params: CancelTaskRequest
) -> web.Response:
    services = request.app[SERVICES]
    context_id, number = _task_id(params.id)
    if await services.turns.session_turn(caller_of(request), context_id, number) is None:
        raise TaskNotFoundError(f"id: task {params.id!r} does not exist")
    raise TaskNotCancelableError(f"id: task {params.id!r} is already completed")


METHODS: dict[str, tuple[type[Proto], Handler]] = {
    "SendMessage": (SendMessageRequest, send_message),
    "SendStreamingMessage": (SendMessageRequest, send_streaming_message),
    "GetTask": (GetTaskRequest, get_task),
    "CancelTask": (CancelTaskRequest, cancel_task),
}


# -- one message as one turn ------------------------------------------------------------


class _Turn:
    """One A2A message as a turn of the caller's session ``contextId``."""

    def __init__(
        self, services: Services, caller: str, context_id: str, message: Message, content: str = ""
    ) -> None:
        self.services = services
        self.caller = caller
        self.context_id = context_id
        self.message = message
        self.content = content
        self.number = 0
        self.pieces = 0

    @classmethod
    async def of(cls, request: web.Request, params: SendMessageRequest) -> _Turn:
        services = request.app[SERVICES]
        caller = caller_of(request)
        message = params.message
        if not message.message_id:
            raise InvalidParamsError("message.messageId: required")
        if message.role != Role.ROLE_USER:
            raise InvalidParamsError("message.role: must be ROLE_USER")
        context_id = message.context_id or uuid.uuid4().hex
        if not SESSION_ID.fullmatch(context_id):
            raise InvalidParamsError(
                "message.contextId: 1-128 letters, digits, '.', '_' or '-', starting alphanumeric"
            )
        if message.task_id:
            ctx, number = _task_id(message.task_id)
            if await services.turns.session_turn(caller, ctx, number) is None:
                raise TaskNotFoundError(f"message.taskId: task {message.task_id!r} does not exist")
            raise UnsupportedOperationError(
                f"message.taskId: task {message.task_id!r} is completed; send the next "
                "message without taskId in the same contextId"
            )
        texts = []
        for index, part in enumerate(message.parts):
            if part.WhichOneof("content") != "text":
                raise ContentTypeNotSupportedError(
                    f"message.parts[{index}]: only text parts are supported"
                )
            texts.append(part.text)
        content = text("\n".join(texts), "message.parts")
        message.context_id = context_id
        return cls(services, caller, context_id, message, content)

    async def run(
        self,
        on_delta: Callable[[str, bool], Awaitable[None]] | None = None,
        on_event: OnToolEvent | None = None,
    ) -> Outcome:
        outcome = await self.services.turns.in_session(
            self.caller, self.context_id, self.content, on_delta=on_delta, on_event=on_event
        )
        assert outcome.turn is not None
        self.number = outcome.turn
        return outcome

    @property
    def task_id(self) -> str:
        return f"{self.context_id}{TASK_SEPARATOR}{self.number}"

    def _reply(self, reply: str) -> Message:
        return Message(
            message_id=f"{self.task_id}-reply",
            context_id=self.context_id,
            task_id=self.task_id,
            role=Role.ROLE_AGENT,
            parts=[Part(text=reply)],
        )

    def _question(self) -> Message:
        question = Message()
        question.CopyFrom(self.message)
        question.task_id = self.task_id
        return question

    def task(self, outcome: Outcome, *, degraded_known: bool = True) -> Task:
        task = Task(
            id=self.task_id,
            context_id=self.context_id,
            status=_status(TaskState.TASK_STATE_COMPLETED),
            artifacts=[
                Artifact(artifact_id=REPLY_ARTIFACT, name="reply", parts=[Part(text=outcome.reply)])
            ],
            history=[self._question(), self._reply(outcome.reply)],
        )
        if degraded_known:
            task.metadata.update({"degraded": outcome.degraded})
        return task

    def working(self) -> Task:
        return Task(
            id=self.task_id,
            context_id=self.context_id,
            status=_status(TaskState.TASK_STATE_WORKING),
            history=[self._question()],
        )

    def piece(self, piece: str) -> TaskArtifactUpdateEvent:
        return TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            artifact=Artifact(artifact_id=REPLY_ARTIFACT, name="reply", parts=[Part(text=piece)]),
            append=self.pieces > 0,
        )

    def calling(self, event: dict[str, Any]) -> TaskStatusUpdateEvent:
        """A working status whose message says which tool the agent is calling."""
        note = Message(
            message_id=f"{self.task_id}-{event['id']}",
            context_id=self.context_id,
            task_id=self.task_id,
            role=Role.ROLE_AGENT,
            parts=[Part(text=f"calling tool {event['name']} with {event['arguments'] or '{}'}")],
        )
        return TaskStatusUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            status=_status(TaskState.TASK_STATE_WORKING, note),
        )

    def tool_artifact(self, event: dict[str, Any]) -> TaskArtifactUpdateEvent:
        """One finished tool call as an artifact ``tool-<call id>``: its result as text,
        the tool, server and outcome in the artifact's metadata."""
        artifact = Artifact(
            artifact_id=f"tool-{event['id']}",
            name=f"tool {event['name']}",
            parts=[Part(text=event["content"])],
        )
        artifact.metadata.update(
            {"tool": event["name"], "server": event["server"], "outcome": event["outcome"]}
        )
        return TaskArtifactUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, artifact=artifact
        )

    def completed(self, outcome: Outcome) -> TaskStatusUpdateEvent:
        event = TaskStatusUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            status=_status(TaskState.TASK_STATE_COMPLETED, self._reply(outcome.reply)),
        )
        event.metadata.update({"degraded": outcome.degraded})
        return event


def _status(state: TaskState, message: Message | None = None) -> TaskStatus:
    status = TaskStatus(state=state)
    if message is not None:
        status.message.CopyFrom(message)
    status.timestamp.GetCurrentTime()
    return status


def _user_message(question: str, task_id: str) -> Message:
    """The stored question of a task (its original messageId is not kept)."""
    context_id = task_id.rpartition(TASK_SEPARATOR)[0]
    return Message(
        message_id=f"{task_id}-question",
        context_id=context_id,
        role=Role.ROLE_USER,
        parts=[Part(text=question)],
    )


def _task_id(task_id: str) -> tuple[str, int]:
    context_id, _, number = task_id.rpartition(TASK_SEPARATOR)
    if not context_id or not number.isdigit() or not SESSION_ID.fullmatch(context_id):
        raise TaskNotFoundError(f"id: task {task_id!r} does not exist")
    return context_id, int(number)


def _degraded(request: web.Request, degraded: bool) -> dict[str, str]:
    if not degraded:
        return {}
    request[DEGRADED] = True
    return {DEGRADED_HEADER: "true"}

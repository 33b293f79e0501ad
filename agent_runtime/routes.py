"""HTTP handlers: validate the request, call the session service, shape the response.

Handlers stay thin; errors are raised as domain exceptions and turned into HTTP by
``middleware/errors.py``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent_runtime import health, jsonwire
from agent_runtime.bodies import json_object, text
from agent_runtime.middleware import DEGRADED
from agent_runtime.middleware.errors import response_for
from agent_runtime.openapi import openapi_document
from agent_runtime.ownership import owner_of
from agent_runtime.paging import page_of, page_request
from agent_runtime.services import SERVICES
from agent_runtime.sse import DEGRADED_HEADER, EventStream, wants_stream
from agent_runtime.tools.loop import OnToolEvent

routes = web.RouteTableDef()


@routes.post("/v1/sessions/{id}/messages")
async def post_message(request: web.Request) -> web.StreamResponse:
    content = text((await json_object(request)).get("content"), "content")
    owner = owner_of(request, admin_may_name_owner=False)
    services = request.app[SERVICES]
    if wants_stream(request):
        return await _streamed_message(request, owner, content)
    calls: list[dict[str, Any]] = []
    on_event = _tool_calls_into(calls) if services.toolbox else None
    outcome = await services.turns.in_session(
        owner, request.match_info["id"], content, on_event=on_event
    )
    headers = {}
    if outcome.degraded:
        request[DEGRADED] = True
        headers[DEGRADED_HEADER] = "true"
    body: dict[str, Any] = {
        "reply": outcome.reply,
        "degraded": outcome.degraded,
        "turn": outcome.turn,
    }
    if calls:
        body["toolCalls"] = calls
    return jsonwire.json_response(body, headers=headers)


def _tool_calls_into(calls: list[dict[str, Any]]) -> OnToolEvent:
    """Collects each finished call (its result event carries the call's name and id)."""
    asked: dict[str, str] = {}

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "tool_call":
            asked[event["id"]] = event["arguments"]
            return
        calls.append({**_without_type(event), "arguments": asked.get(event["id"], "")})

    return on_event


def _without_type(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "type"}


async def _streamed_message(request: web.Request, owner: str, content: str) -> web.StreamResponse:
    """``?stream=true``: ``delta`` events as the model writes (``tool_call`` and
    ``tool_result`` events as the agent calls its tools), then ``done`` once journaled.

    An error before the first piece is an ordinary JSON error; after it, an ``error``
    event ends the stream, and the turn was not stored. A client that hangs up mid-stream
    stops the turn before it is journaled.
    """
    stream = EventStream(request)

    async def on_delta(piece: str, degraded: bool) -> None:
        if degraded:
            request[DEGRADED] = True
            stream.headers[DEGRADED_HEADER] = "true"
        await stream.send({"delta": piece, "degraded": degraded}, event="delta")

    async def on_event(event: dict[str, Any]) -> None:
        await stream.send(_without_type(event), event=event["type"])

    turns = request.app[SERVICES].turns
    try:
        outcome = await turns.in_session(
            owner, request.match_info["id"], content, on_delta=on_delta, on_event=on_event
        )
    except ConnectionResetError:
        return stream.response or web.Response(status=499)
    except Exception as error:
        if not stream.started:
            raise
        return await stream.end(("error", json.loads(response_for(request, error).text or "{}")))
    done = {"reply": outcome.reply, "degraded": outcome.degraded, "turn": outcome.turn}
    return await stream.end(("done", done))


@routes.get("/v1/sessions/{id}")
async def get_session(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    owner = owner_of(request, admin_may_name_owner=True)
    after, limit = page_request(request.query)
    messages = await request.app[SERVICES].sessions.get(owner, session_id)
    page = page_of(messages, after, limit)
    return jsonwire.json_response(
        {"id": session_id, "messages": page.messages, "total": page.total, "next": page.next}
    )


@routes.delete("/v1/sessions/{id}")
async def delete_session(request: web.Request) -> web.Response:
    owner = owner_of(request, admin_may_name_owner=True)
    await request.app[SERVICES].sessions.delete(owner, request.match_info["id"])
    return web.Response(status=204)


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@routes.get("/livez")
async def livez(request: web.Request) -> web.Response:
    """Answers while the event loop runs; depends on nothing outside the process."""
    if _wants_json(request):
        return web.json_response({"status": "ok"})
    verbose = "verbose" in request.query
    return web.Response(text="[+]ping ok\nlivez check passed\n" if verbose else "ok")


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    results = await health.run_checks(services.checks)
    if not services.started:
        results.insert(0, health.CheckResult("startup", False, "initialising"))
    if services.shutting_down:
        results.insert(0, health.CheckResult("shutdown", False, "shutting down"))
    # The metric tells the whole truth; ``?exclude=<check>`` (as on the API server) only
    # changes the probe's verdict, so a shared database's outage can be left out of it.
    services.metrics.ready.set(1 if all(r.ok for r in results) else 0)
    excluded = frozenset(request.query.getall("exclude", ()))
    passed = health.passes(results, excluded)
    status = 200 if passed else 500
    if _wants_json(request):
        return web.json_response(health.render_json(results, excluded), status=status)
    text = health.render_text(results, verbose="verbose" in request.query, excluded=excluded)
    return web.Response(text=text, status=status)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICES].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@routes.get("/v1/tools")
async def list_tools(request: web.Request) -> web.Response:
    """The tool servers of this replica: state, tools, and the calls it made to each."""
    toolbox = request.app[SERVICES].toolbox
    return web.json_response({"servers": toolbox.describe() if toolbox else []})

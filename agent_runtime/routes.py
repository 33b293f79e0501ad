"""HTTP handlers: validate the request, call the session service, shape the response.

Handlers stay thin; errors are raised as domain exceptions and turned into HTTP by
``middleware/errors.py``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent_runtime import health
from agent_runtime.errors import InvalidRequest
from agent_runtime.middleware import DEGRADED
from agent_runtime.openapi import openapi_document
from agent_runtime.ownership import owner_of
from agent_runtime.paging import page_of, page_request
from agent_runtime.services import SERVICES

routes = web.RouteTableDef()


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("body", "must be a JSON object") from None
    except RecursionError:
        raise InvalidRequest("body", "must be a JSON object nested less deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    return body


def _text(body: dict[str, Any], field: str) -> str:
    """A non-empty string field that can be stored as UTF-8.

    JSON can carry a lone surrogate (``"\\ud800"``) that no UTF-8 encoder accepts. Refused
    here, it never reaches the journal, whose group commit would have to fail it there.
    """
    value = body.get(field)
    if not isinstance(value, str):
        raise InvalidRequest(field, "required, a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            field, "must be valid Unicode text (it holds a lone surrogate such as \\ud800)"
        ) from None
    if not value.strip():
        raise InvalidRequest(field, "must not be empty")
    return value


@routes.post("/v1/sessions/{id}/messages")
async def post_message(request: web.Request) -> web.Response:
    content = _text(await _json_object(request), "content")
    owner = owner_of(request, admin_may_name_owner=False)
    result = await request.app[SERVICES].sessions.post(owner, request.match_info["id"], content)
    if result.degraded:
        request[DEGRADED] = True
    return web.json_response(
        {"reply": result.reply, "degraded": result.degraded, "turn": result.turn}
    )


@routes.get("/v1/sessions/{id}")
async def get_session(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    owner = owner_of(request, admin_may_name_owner=True)
    after, limit = page_request(request.query)
    messages = request.app[SERVICES].sessions.get(owner, session_id)
    page = page_of(messages, after, limit)
    return web.json_response(
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
    passed = all(r.ok for r in results)
    services.metrics.ready.set(1 if passed else 0)
    status = 200 if passed else 500
    if _wants_json(request):
        return web.json_response(health.render_json(results), status=status)
    text = health.render_text(results, verbose="verbose" in request.query)
    return web.Response(text=text, status=status)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICES].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())

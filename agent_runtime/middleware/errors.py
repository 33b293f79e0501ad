"""Domain errors to HTTP, at the edge.

``RequestError`` subclasses carry their status and code; aiohttp's own HTTP exceptions
(unknown route, wrong method, body over ``client_max_size``) get the same JSON shape:
``{"error": {"code", "message", "type", "field"?, "param"?}}``. ``type`` and ``param``
(the same as ``field``) are the OpenAI error shape's names, so one body serves the native
API and the OpenAI SDKs alike, with the same status codes. A full state store (``StateFull``) is 507
Insufficient Storage with its reason, not a 500; any other ``StateError`` (the store out of
reach: an API server cut off, a deadline passed) is 503 ``state_unavailable`` with
Retry-After, since nothing was acknowledged and a later try may succeed. Anything else is
a 500 whose log line has the exception type and message, never the request body. Used by
``middleware/guard.py``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from agent_runtime import jsonwire
from agent_runtime.errors import InvalidRequest, RequestError
from agent_runtime.middleware import ERROR_CODE
from agent_runtime.state import EntryNotWritable, StateError, StateFull

STATE_RETRY_AFTER_SECONDS = 5

log = logging.getLogger("agent_runtime.errors")


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, str] = {"code": code, "message": message, "type": error_type(status)}
    if field is not None:
        body["field"] = field
        body["param"] = field
    return jsonwire.json_response({"error": body}, status=status, headers=headers)


def error_type(status: int) -> str:
    """The OpenAI error ``type`` for a status code."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def response_for(request: web.Request, error: Exception) -> web.Response:
    """The JSON error response for an exception; redirects (HTTP status < 400) re-raise."""
    if isinstance(error, RequestError):
        request[ERROR_CODE] = error.code
        headers = dict(error.headers)
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
        field = error.field if isinstance(error, InvalidRequest) else None
        response = error_response(
            error.status, error.code, error.message, field=field, headers=headers
        )
        if error.closes_connection:
            response.force_close()
        return response
    if isinstance(error, StateFull):
        request[ERROR_CODE] = "insufficient_storage"
        log.warning("state store full", extra={"fields": {"reason": str(error)}})
        message = f"this replica cannot store more state: {error}"
        return error_response(507, "insufficient_storage", message)
    if isinstance(error, StateError) and not isinstance(error, EntryNotWritable):
        # The store could not take the write (API server or database out of reach, a
        # volume gone read-only): nothing was acknowledged, and trying later may work.
        request[ERROR_CODE] = "state_unavailable"
        log.warning("state store unavailable", extra={"fields": {"reason": str(error)}})
        message = f"this replica cannot store the turn now: {error}"
        headers = {"Retry-After": str(STATE_RETRY_AFTER_SECONDS)}
        return error_response(503, "state_unavailable", message, headers=headers)
    if isinstance(error, web.HTTPException):
        if error.status < 400:
            raise error
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            error.status, "http_error"
        )
        request[ERROR_CODE] = code
        return error_response(error.status, code, error.reason)
    request[ERROR_CODE] = "internal"
    log.exception("unhandled error")  # called from the except block: same traceback
    return error_response(500, "internal", "internal error")

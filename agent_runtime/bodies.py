"""Request bodies: JSON objects and text fields, checked the same way on every surface.

A body that is not a JSON object is a 400 naming ``body``; a text field must be a
non-empty string that can be stored as UTF-8. Called by the handlers of every surface;
parsed by ``jsonwire``, which refuses what the standard library refuses.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent_runtime import jsonwire
from agent_runtime.errors import InvalidRequest


async def json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = jsonwire.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("body", "must be a JSON object") from None
    except RecursionError:
        raise InvalidRequest("body", "must be a JSON object nested less deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    return body


def text(value: Any, field: str) -> str:
    """A non-empty string that can be stored as UTF-8.

    JSON can carry a lone surrogate (``"\\ud800"``) that no UTF-8 encoder accepts. Refused
    here, it never reaches the journal, whose group commit would have to fail it there.
    """
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

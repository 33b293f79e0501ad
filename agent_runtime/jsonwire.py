"""JSON on the wire: request bodies parsed and responses encoded with orjson.

Every turn parses one body and encodes one response, and the standard library's ``json``
costs several times orjson's there (docs/benchmarks.md). What clients may send is still
decided by the standard library: orjson refuses some documents ``json`` accepts (a lone
surrogate escape such as ``"\\ud800"``, ``NaN``, integers past 64 bits, nesting past 1,024
levels), so anything orjson refuses is parsed again by ``json.loads``, which accepts it
or raises its own error. A body is therefore accepted or refused, and refused with the
same message, exactly as before; only well-formed bodies take the fast path. One
difference remains, harmless for our shapes (no field takes an integer that large): an
integer past 64 bits that orjson reads becomes a float.

Responses are UTF-8 JSON without spaces, with ``Content-Type: application/json;
charset=utf-8`` as aiohttp's ``json_response`` sets it. Called by the handlers and the
error middleware.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web


def loads(raw: bytes) -> Any:
    """The document in ``raw``; raises what ``json.loads`` raises for what it refuses."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON (dict keys must be strings)."""
    return orjson.dumps(data)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Like ``web.json_response``, encoded by orjson straight to bytes."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )

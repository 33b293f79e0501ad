"""Pages of a session's messages for ``GET /v1/sessions/{id}?after=&limit=``.

A session can hold megabytes (hundreds of long turns), and encoding all of it as one JSON
answer runs on the event loop: eight such GETs at once pushed ``/livez`` past the probe
timeout. So a GET answers one page: at most ``limit`` messages (default 100, at most
1,000) and about ``PAGE_BYTES`` of text (always at least one message, so a page always
moves forward). ``after`` counts the messages already read; the answer's ``next`` is the
``after`` of the following page, or ``None`` at the end. Used by ``routes.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent_runtime.errors import InvalidRequest
from agent_runtime.state import Message

DEFAULT_AFTER = 0
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    total: int
    next: int | None


def page_request(query: Mapping[str, str]) -> tuple[int, int]:
    """``after`` and ``limit`` from the query string; InvalidRequest naming a bad one."""
    after = _whole_number(query, "after", DEFAULT_AFTER, minimum=0)
    limit = _whole_number(query, "limit", DEFAULT_LIMIT, minimum=1)
    if limit > MAX_LIMIT:
        raise InvalidRequest("limit", f"must be at most {MAX_LIMIT} (got {limit})")
    return after, limit


def _whole_number(query: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdecimal() or len(raw) > 9:
        raise InvalidRequest(name, f"must be a whole number from {minimum}")
    value = int(raw)
    if value < minimum:
        raise InvalidRequest(name, f"must be at least {minimum} (got {value})")
    return value


def page_of(
    messages: Sequence[Message], after: int, limit: int, page_bytes: int = PAGE_BYTES
) -> Page:
    """The messages after the first ``after``: up to ``limit`` of them and ~``page_bytes``."""
    taken: list[Message] = []
    size = 0
    for message in messages[after : after + limit]:
        size += len(message["content"]) + len(message["role"])
        if taken and size > page_bytes:
            break
        taken.append({"role": message["role"], "content": message["content"]})
    end = after + len(taken)
    return Page(taken, len(messages), end if end < len(messages) else None)

"""What the HTTP server layer tells the world about itself and about its requests.

Two things aiohttp does on its own, below our middlewares:

- It answers every response with ``Server: Python/3.x aiohttp/x.y``, which tells a
  scanner which known bugs to try. ``install`` replaces it with ``agentry`` for every
  response the app prepares.
- When it cannot parse a request (a header line over 8,190 bytes, a malformed request
  line or header) it logs the exception on the ``aiohttp.server`` logger, and the message
  quotes up to 100 bytes of the offending line: for an oversized ``Authorization`` header,
  the bearer token. ``ServerErrorRedaction`` replaces any exception on that logger with its
  type and the sizes it carries, so no request bytes reach a log line.

aiohttp's own 400 answer to a request it cannot parse is sent before the app sees the
request, so it still names aiohttp's version in ``Server``. Called by ``app.create_app``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

SERVER_LOGGER = "aiohttp.server"
SERVER_NAME = "agentry"


class ServerErrorRedaction(logging.Filter):
    """Turns a logged exception into its type and sizes, dropping its message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None and record.exc_info[1] is not None:
            described = describe_error(record.exc_info[1])
            record.exc_info = None
            record.exc_text = None
            record.fields = {**getattr(record, "fields", {}), **described}
        return True


def describe_error(error: BaseException) -> dict[str, Any]:
    """What may be logged about a server-level error: its type, status and sizes."""
    fields: dict[str, Any] = {"error_type": type(error).__name__}
    if isinstance(error, HttpProcessingError):
        fields["status"] = error.code
    if isinstance(error, LineTooLong):
        _line, limit, actual_size = error.args
        fields["limit_bytes"] = limit
        if isinstance(actual_size, int):
            fields["size_bytes"] = actual_size
    return fields


async def _plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME


def install(app: web.Application) -> None:
    """Hide the server version on ``app``'s responses and redact aiohttp's error lines."""
    app.on_response_prepare.append(_plain_server_header)
    server_log = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ServerErrorRedaction) for f in server_log.filters):
        server_log.addFilter(ServerErrorRedaction())

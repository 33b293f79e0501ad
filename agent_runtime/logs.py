"""JSON logs, one object per line, with the request id, agent and replica on every line.

Called once by ``lifecycle`` (``configure_logging``). The request id lives in a context
variable set by the request-id middleware, so any module's ``logging`` call inside a
request carries it. Callers pass structured fields with ``extra={"fields": {...}}``;
nothing here ever receives message contents, keys or tokens — callers log ids and sizes.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

request_id_var: ContextVar[str | None] = ContextVar("agentry_request_id", default=None)

# Built once: ``json.dumps`` with options constructs a new encoder for every line.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with fixed identity fields."""

    def __init__(self, agent: str, replica: str) -> None:
        super().__init__()
        self._agent = agent
        self._replica = replica

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "agent": self._agent,
            "replica": self._replica,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            payload["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and message only: tracebacks can quote local variables' repr.
            payload["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return _ENCODER.encode(payload)


def configure_logging(
    *, agent: str, replica: str, level: str, stream: TextIO | None = None
) -> logging.Handler:
    """Route every logger through one JSON handler on stderr (or ``stream``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(agent, replica))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's own access log duplicates ours and is not JSON.
    logging.getLogger("aiohttp.access").disabled = True
    logging.getLogger("asyncio").setLevel(logging.INFO)
    # At debug, the Kubernetes client logs whole API bodies (state ConfigMaps, Leases):
    # noise at best, so its loggers stay at info whatever the runtime's level.
    for noisy in ("kubernetes_asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    return handler

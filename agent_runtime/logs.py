"""JSON logs, one object per line, with the request id, agent and replica on every line.

Called once by ``cli.main`` (``configure_logging``). The request id lives in a context
variable set by the request-id middleware, so any module's ``logging`` call inside a
request carries it. Callers pass structured fields with ``extra={"fields": {...}}``;
nothing here ever receives message contents, keys or tokens — callers log ids and sizes.

Two things keep logging off the request's path (docs/benchmarks.md measured them):

- Lines are formatted where they are logged (the request id is in that task's context)
  and written by ``LineWriter``'s own thread, which writes whatever has queued up in one
  call. A slow reader of stderr (a full pipe to the container runtime) then delays
  lines, never requests, and no line is dropped: the queue is unbounded and is written
  out on exit (``logging.shutdown``). Only a process killed outright (SIGKILL) can lose
  the lines still queued, as it loses any buffered output.
- The access log line, one per request, is written by ``log_access`` as preformatted
  JSON, without a ``LogRecord`` or a dict of fields, when ``LineWriter`` is the only
  handler (what ``configure_logging`` installs); with any other set-up (a test's log
  capture) it goes through ``logging`` like every other line, in the same shape.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any, TextIO

from agent_runtime.isotime import iso_millis, now_millis

request_id_var: ContextVar[str | None] = ContextVar("agentry_request_id", default=None)

ACCESS_LOGGER = "agent_runtime.access"
FLUSH_TIMEOUT_SECONDS = 5.0
"""How long ``flush`` (and so exit) waits for queued lines to be written."""

# Built once: ``json.dumps`` with options constructs a new encoder for every line.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))

_access_log = logging.getLogger(ACCESS_LOGGER)

# Text JSON writes as it is, between quotes: request ids are of these characters (the
# request context checks a client's or makes its own), so they need no encoder call.
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9._-]*")


def _json_text(text: str) -> str:
    """``text`` as a JSON string, as ``_ENCODER`` writes it."""
    return f'"{text}"' if _PLAIN_TEXT.fullmatch(text) else _ENCODER.encode(text)


_timestamp = iso_millis  # the time of a line, to the millisecond, in UTC


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with fixed identity fields."""

    def __init__(self, agent: str, replica: str) -> None:
        super().__init__()
        self._agent = agent
        self._replica = replica
        self._access_head = (
            '","level":"info","logger":"agent_runtime.access","message":"request",'
            f'"agent":{_ENCODER.encode(agent)},"replica":{_ENCODER.encode(replica)},'
            '"request_id":'
        )
        self._quoted: dict[str, str] = {}  # methods and route templates: a handful

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _timestamp(record.created),
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

    def access_line(
        self, request_id: str, method: str, route: str, status: int, duration_ms: float
    ) -> str:
        """The line ``format`` gives an access record with these fields, built directly."""
        return (
            f'{{"time":"{now_millis()}{self._access_head}'
            f"{_json_text(request_id)},"
            f'"method":{self._quote(method)},"route":{self._quote(route)},'
            f'"status":{status},"duration_ms":{duration_ms!r}}}'
        )

    def _quote(self, text: str) -> str:
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = _ENCODER.encode(text)
            if len(self._quoted) < 256:
                self._quoted[text] = quoted
        return quoted


class LineWriter(logging.Handler):
    """A handler that formats on the caller's thread and writes on a thread of its own.

    The standard library's ``QueueHandler`` copies every record, and its listener wakes
    for every line and writes and flushes it alone. Here a line is appended to a deque
    (no lock, no system call); the writer thread is woken only when it sleeps, then
    lingers ``LINGER_SECONDS`` so that a burst of requests costs one wake-up and one
    ``write``, not one each.
    """

    LINGER_SECONDS = 0.005

    def __init__(self, stream: TextIO, formatter: JsonFormatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.json = formatter
        self._stream = stream
        self._queue: collections.deque[str | threading.Event | None] = collections.deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._thread = threading.Thread(target=self._run, name="agentry-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.put(line)

    def put(self, line: str) -> None:
        """Queue a line (formatted by ``emit``, or by the caller: ``log_access``)."""
        self._enqueue(line)

    def flush(self) -> None:
        """Return once every line queued before the call is written (or after a timeout)."""
        if not self._thread.is_alive():
            return
        written = threading.Event()
        self._enqueue(written)
        written.wait(FLUSH_TIMEOUT_SECONDS)

    def close(self) -> None:
        """Write what is queued, then stop the thread; called by ``logging.shutdown``."""
        if self._thread.is_alive():
            self._enqueue(None)
            self._thread.join(FLUSH_TIMEOUT_SECONDS)
        super().close()

    def _enqueue(self, item: str | threading.Event | None) -> None:
        self._queue.append(item)
        if self._sleeping:  # a stale True costs a spurious wake-up, never a lost one
            self._sleeping = False
            self._wake.set()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            self._sleeping = True
            if not self._queue:  # checked after announcing sleep: an append now wakes it
                self._wake.wait()
            self._wake.clear()
            self._sleeping = False
            time.sleep(self.LINGER_SECONDS)
            lines: list[str] = []
            flushed: list[threading.Event] = []
            while self._queue:
                item = self._queue.popleft()
                if item is None:
                    stopping = True
                elif isinstance(item, str):
                    lines.append(item)
                else:
                    flushed.append(item)
            if lines:
                self._write(lines)
            for event in flushed:
                event.set()

    def _write(self, lines: list[str]) -> None:
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr itself is gone or closed: there is nowhere left to say so


_installed: LineWriter | None = None


def log_access(request_id: str, method: str, route: str, status: int, seconds: float) -> None:
    """The access log line of one request: method, route template, status and duration."""
    if not _access_log.isEnabledFor(logging.INFO):
        return
    duration_ms = round(seconds * 1000, 2)
    writer = _installed
    root = logging.root
    if (
        writer is not None
        and len(root.handlers) == 1
        and root.handlers[0] is writer
        and writer.level <= logging.INFO
        and not (root.filters or writer.filters or _access_log.filters or _access_log.handlers)
    ):
        writer.put(writer.json.access_line(request_id, method, route, status, duration_ms))
        return
    fields = {"method": method, "route": route, "status": status, "duration_ms": duration_ms}
    _access_log.info("request", extra={"fields": fields})


def configure_logging(
    *, agent: str, replica: str, level: str, stream: TextIO | None = None
) -> LineWriter:
    """Route every logger through one JSON ``LineWriter`` on stderr (or ``stream``)."""
    global _installed
    handler = LineWriter(stream or sys.stderr, JsonFormatter(agent, replica))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
        if isinstance(existing, LineWriter):
            existing.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    _installed = handler
    # aiohttp's own access log duplicates ours and is not JSON.
    logging.getLogger("aiohttp.access").disabled = True
    logging.getLogger("asyncio").setLevel(logging.INFO)
    return handler

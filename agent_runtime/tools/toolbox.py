"""Every tool server of the Agent: what the model is offered, and calls with their limits.

A tool is offered under its own name. When two servers list the same name, the server
listed first in spec.tools keeps it and the other's is left out (logged once per list),
so a name always means one tool. Each call has its server's timeout; each server has a
circuit breaker that opens after ``BREAKER_FAILURES`` calls in a row that found it
unreachable or timed out, and then refuses calls for ``BREAKER_OPEN_SECONDS`` (the
model gets an error result at once instead of waiting out the timeout each time). No
failure of a tool or a server is an HTTP error: it is a result the model reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent_runtime.circuit import CircuitBreaker
from agent_runtime.config import ToolServer
from agent_runtime.health import CheckResult
from agent_runtime.metrics import Metrics
from agent_runtime.providers.base import FunctionTool, ToolCall
from agent_runtime.tools.server import CallOutcome, ToolServerClient

log = logging.getLogger("agent_runtime.tools")

BREAKER_FAILURES = 3
BREAKER_OPEN_SECONDS = 30.0
FIRST_CONNECT_SECONDS = 3.0
"""How long start-up waits for the servers' first listing before the runtime is ready
anyway (a server that is down must not keep the agent from answering)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One call's result as the model, the memory and the surfaces see it."""

    call: ToolCall
    server: str
    text: str
    outcome: str

    @property
    def is_error(self) -> bool:
        return self.outcome != "ok"


class Toolbox:
    def __init__(
        self,
        servers: Sequence[ToolServer],
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        retry_seconds: float = 30.0,
    ) -> None:
        self._metrics = metrics
        self.servers = [
            ToolServerClient(server, retry_seconds=retry_seconds, on_change=self._changed)
            for server in servers
        ]
        self.breakers = {
            server.name: CircuitBreaker(
                failure_threshold=BREAKER_FAILURES,
                open_seconds=BREAKER_OPEN_SECONDS,
                clock=clock,
                name=f"tool server {server.name}",
            )
            for server in servers
        }
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self._offered: tuple[FunctionTool, ...] = ()
        self._owners: dict[str, ToolServerClient] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def __bool__(self) -> bool:
        return bool(self.servers)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to every server; wait a little for their first listing, not forever."""
        self._tasks = [asyncio.create_task(server.run()) for server in self.servers]
        waits = [asyncio.ensure_future(server.tried.wait()) for server in self.servers]
        await asyncio.wait(waits, timeout=FIRST_CONNECT_SECONDS)
        for wait in waits:
            wait.cancel()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- what the model is offered -------------------------------------------------------

    def offered(self) -> tuple[FunctionTool, ...]:
        return self._offered

    def _changed(self) -> None:
        """A server's list changed (or it went away): rebuild the offer and the owners."""
        offered: list[FunctionTool] = []
        owners: dict[str, ToolServerClient] = {}
        for server in self.servers:
            for tool in server.tools:
                if tool.name in owners:
                    log.warning(
                        "tool name listed by two servers; the first keeps it",
                        extra={
                            "fields": {
                                "tool": tool.name,
                                "kept": owners[tool.name].name,
                                "left_out": server.name,
                            }
                        },
                    )
                    continue
                owners[tool.name] = server
                offered.append(
                    FunctionTool(tool.name, tool.description or "", dict(tool.input_schema))
                )
        self._offered, self._owners = tuple(offered), owners

    # -- calls ---------------------------------------------------------------------------

    async def call(self, call: ToolCall) -> ToolResult:
        server = self._owners.get(call.name)
        if server is None:
            names = ", ".join(sorted(self._owners)) or "none"
            return self._done(call, "", "invalid", f"error: no tool {call.name!r}; tools: {names}")
        try:
            arguments = _arguments(call.arguments)
        except ValueError as error:
            return self._done(call, server.name, "invalid", f"error: {error}")
        breaker = self.breakers[server.name]
        if not breaker.allow():
            text = (
                f"error: tool server {server.name} is failing; not called "
                f"(retry in {breaker.retry_after()} s)"
            )
            return self._done(call, server.name, "circuit_open", text)
        started = time.perf_counter()
        try:
            outcome = await server.call(call.name, arguments, server.config.timeout_seconds)
        except BaseException:
            breaker.release()
            raise
        self._metrics.tool_call_duration.labels(server.name, call.name).observe(
            time.perf_counter() - started
        )
        _judge(breaker, outcome)
        return self._done(call, server.name, outcome.outcome, outcome.text)

    def _done(self, call: ToolCall, server: str, outcome: str, text: str) -> ToolResult:
        self._metrics.tool_calls.labels(server or "none", call.name, outcome).inc()
        self._metrics.count_tool_call()
        self.calls[(server, call.name, outcome)] += 1
        if outcome != "ok":
            log.info(
                "tool call failed",
                extra={"fields": {"server": server, "tool": call.name, "outcome": outcome}},
            )
        return ToolResult(call, server, text, outcome)

    # -- health and listing --------------------------------------------------------------

    def health(self) -> CheckResult:
        """Always passing (a tool server is not a reason to leave the Service); a server
        that cannot be used is a warning here and ``failed`` in the heartbeat's health."""
        down = [f"{s.name} {self._state(s)}" for s in self.servers if self._state(s) not in {"ok"}]
        detail = f"{len(self._offered)} tools from {len(self.servers)} servers"
        return CheckResult("tools", True, detail=detail, warning="; ".join(down))

    def heartbeat_value(self) -> str:
        down = [f"{s.name} {self._state(s)}" for s in self.servers if self._state(s) != "ok"]
        return "ok" if not down else "failed: " + "; ".join(down)

    def _state(self, server: ToolServerClient) -> str:
        if self.breakers[server.name].state == "open":
            return "circuit open"
        return server.status

    def describe(self) -> list[dict[str, Any]]:
        """Each server with its state and tools, and this replica's call counts."""
        out = []
        for server in self.servers:
            tools = []
            for tool in server.tools:
                counts = {
                    outcome: n
                    for (name, tool_name, outcome), n in self.calls.items()
                    if name == server.name and tool_name == tool.name
                }
                tools.append(
                    {
                        "name": tool.name,
                        "description": tool.description or "",
                        "offered": self._owners.get(tool.name) is server,
                        "calls": sum(counts.values()),
                        "errors": sum(n for o, n in counts.items() if o != "ok"),
                    }
                )
            out.append(
                {
                    "name": server.name,
                    "url": server.url,
                    "status": self._state(server),
                    "timeoutSeconds": server.config.timeout_seconds,
                    "tools": tools,
                }
            )
        return out


def _judge(breaker: CircuitBreaker, outcome: CallOutcome) -> None:
    if outcome.server_fault:
        breaker.record_failure()
    else:
        breaker.record_success()


def _arguments(text: str) -> dict[str, Any]:
    """The model's arguments as a JSON object; an empty string is no arguments."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"arguments are not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise ValueError("arguments must be a JSON object")
    return value

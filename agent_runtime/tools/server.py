"""One MCP server: a connection kept open by its own task, its tool list, and calls.

The official SDK's client (``mcp.Client`` over ``streamable_http_client``) opens a
session whose anyio task group must be entered and left by one task, so
``ToolServerClient.run`` owns the connection: connect, list the tools, then wait until
the server says its list changed (list again) or a call found the connection broken
(reconnect). Calls come from the turns' tasks and share the open session.

The client speaks the 2025-11-25 revision (``initialize``, ``Mcp-Session-Id``), which is
what servers run today; the SDK handles the protocol details. A server that is down is
tried again after ``retry_seconds``, or at once when a call needs it. The header file is
read on each connect, so a rotated Secret is used from the next connection on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import mcp_types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agent_runtime.config import ToolServer, redact_url
from agent_runtime.tools.headers import read_headers

log = logging.getLogger("agent_runtime.tools")

MAX_RESULT_CHARS = 16_384
"""A tool result longer than this is cut (and says so): it goes into the prompt and the
session memory, both of which have limits of their own."""
CONNECT_TIMEOUT_SECONDS = 10.0
SESSION_LOST = "session_lost"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one call gave: the text the model sees, and how it ended (for metrics)."""

    text: str
    outcome: str  # ok | tool_error | timeout | unavailable | invalid
    server_fault: bool = False
    """True when the server could not be reached or did not answer: counts against its
    circuit breaker. A tool that answered with an error is not the server's fault."""

    @property
    def is_error(self) -> bool:
        return self.outcome != "ok"


class ToolServerClient:
    """The connection to one server and the tools it lists (``allowedTools`` applied)."""

    def __init__(
        self,
        config: ToolServer,
        *,
        retry_seconds: float,
        on_change: Callable[[], None],
    ) -> None:
        self.config = config
        self.tools: tuple[mcp_types.Tool, ...] = ()
        self.status = "connecting"
        """``ok``, ``connecting`` or why the server cannot be used (no secret in it)."""
        self._retry_seconds = retry_seconds
        self._on_change = on_change
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._relist = False
        self._broken = False
        self._connected = asyncio.Event()
        self.tried = asyncio.Event()
        """Set once the first connection attempt has ended, either way."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def url(self) -> str:
        return redact_url(self.config.url)

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def run(self) -> None:
        """Connect, serve, reconnect: until cancelled."""
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every transport and protocol failure alike
                self._lost(describe(error))
            self.tried.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def _session(self) -> None:
        headers = read_headers(self.config.headers_file)
        timeout = httpx2.Timeout(CONNECT_TIMEOUT_SECONDS, read=None)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
            transport = streamable_http_client(self.config.url, http_client=http)
            client = Client(transport, mode="legacy", message_handler=self._on_message, cache=None)
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await client.__aenter__()
            try:
                await self._list(client)
                self._client, self._broken = client, False
                self.status = "ok"
                self._connected.set()
                self.tried.set()
                log.info(
                    "tool server connected",
                    extra={"fields": {"server": self.name, "tools": len(self.tools)}},
                )
                await self._serve(client)
            finally:
                self._client = None
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)

    async def _serve(self, client: Client) -> None:
        """Until a call finds the connection broken; list again when the server asks."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._broken:
                raise ConnectionError("the connection broke during a call")
            if self._relist:
                self._relist = False
                await self._list(client)
                log.info(
                    "tool list changed",
                    extra={"fields": {"server": self.name, "tools": len(self.tools)}},
                )

    async def _list(self, client: Client) -> None:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        allowed = self.config.allowed_tools
        self.tools = tuple(t for t in tools if allowed is None or t.name in allowed)
        self._on_change()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._relist = True
            self._wake.set()

    def _lost(self, reason: str) -> None:
        if self.status != f"failed: {reason}":
            log.warning(
                "tool server unavailable",
                extra={"fields": {"server": self.name, "url": self.url, "reason": reason}},
            )
        self.status = f"failed: {reason}"
        if self.tools:
            self.tools = ()
            self._on_change()

    async def call(self, tool: str, arguments: dict[str, Any], seconds: float) -> CallOutcome:
        """One call within ``seconds``; every failure becomes an error result.

        A server that lost our session (it restarted: the spec's 404 for a session id it
        does not know) never ran the call, so it is made once more on a new session.
        """
        outcome = await self._call_once(tool, arguments, seconds)
        if outcome.outcome != SESSION_LOST:
            return outcome
        self._client = None
        self._broken = True
        self._wake.set()
        outcome = await self._call_once(tool, arguments, seconds)
        if outcome.outcome == SESSION_LOST:
            return CallOutcome(outcome.text, "unavailable", server_fault=True)
        return outcome

    async def _call_once(self, tool: str, arguments: dict[str, Any], seconds: float) -> CallOutcome:
        client = self._client or await self._reconnected(seconds)
        if client is None:
            return CallOutcome(
                f"error: tool server {self.name} is unavailable ({self.status})",
                "unavailable",
                server_fault=True,
            )
        try:
            async with asyncio.timeout(seconds):
                result = await client.call_tool(tool, arguments, read_timeout_seconds=seconds)
        except TimeoutError:
            return _timed_out(tool, seconds)
        except MCPError as error:
            if error.code == mcp_types.REQUEST_TIMEOUT:
                return _timed_out(tool, seconds)
            if error.code == mcp_types.INVALID_REQUEST and "session" in error.message.lower():
                return CallOutcome(f"error: tool server {self.name} lost the session", SESSION_LOST)
            return CallOutcome(f"error: {_cut(error.message)}", "tool_error")
        except Exception as error:  # the transport: reconnect before the next call
            self._broken = True
            self._wake.set()
            return CallOutcome(
                f"error: tool server {self.name} connection failed ({describe(error)})",
                "unavailable",
                server_fault=True,
            )
        text = result_text(result)
        return CallOutcome(text, "tool_error" if result.is_error else "ok")

    async def _reconnected(self, seconds: float) -> Client | None:
        """Ask the connection task to try now, and wait for it up to ``seconds``."""
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(seconds, CONNECT_TIMEOUT_SECONDS)):
                await self._connected.wait()
        return self._client


def _timed_out(tool: str, timeout: float) -> CallOutcome:
    return CallOutcome(
        f"error: tool {tool} did not answer within {timeout:g} s", "timeout", server_fault=True
    )


def result_text(result: mcp_types.CallToolResult) -> str:
    """The text the model is given: the text blocks, else the structured content."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content omitted]")
    text = "\n".join(parts)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, sort_keys=True)
    return _cut(text)


def _cut(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[cut: {len(text)} characters, {MAX_RESULT_CHARS} kept]"


def describe(error: BaseException) -> str:
    """A short reason without secrets: the innermost exception's type and message head."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).splitlines()[0] if str(error) else ""
    text = text[:120]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

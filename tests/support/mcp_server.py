"""A real MCP server (the official SDK's MCPServer, formerly FastMCP) over streamable HTTP.

Tools: ``add(a, b)`` returns the sum; ``echo(text)`` returns the text; ``hang()`` waits
until ``release()`` (a tool that does not answer); ``grow()`` adds the tool
``extra(n)`` and tells the client that the list changed. ``calls`` records each call's
tool name and the ``Authorization`` header it came with. ``stop()`` and ``start()`` on the
same port play a restarting server.

By hand or in a pod: ``python -m tests.support.mcp_server HOST PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer


class ToolServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.calls: list[tuple[str, str | None]] = []
        self.released = asyncio.Event()
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.mcp = self._build()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"

    def release(self) -> None:
        self.released.set()

    def _seen(self, tool: str, ctx: Context[Any, Any] | None) -> None:
        headers = ctx.headers if ctx is not None else None
        self.calls.append((tool, (headers or {}).get("authorization")))

    def _build(self) -> MCPServer:
        server = MCPServer("agentry-test-tools")

        @server.tool()
        def add(a: int, b: int, ctx: Context[Any, Any]) -> int:
            """Add two integers."""
            self._seen("add", ctx)
            return a + b

        @server.tool()
        def echo(text: str, ctx: Context[Any, Any]) -> str:
            """Return the text as it was given."""
            self._seen("echo", ctx)
            return text

        @server.tool()
        async def hang(ctx: Context[Any, Any]) -> str:
            """Never answers until the test releases it."""
            self._seen("hang", ctx)
            await self.released.wait()
            return "released"

        @server.tool()
        async def grow(ctx: Context[Any, Any]) -> str:
            """Adds the tool `extra` and says that the tool list changed."""
            self._seen("grow", ctx)

            def extra(n: int) -> int:
                """Double a number."""
                return 2 * n

            server.add_tool(extra)
            await ctx.session.send_tool_list_changed()
            return "grown"

        return server

    async def start(self) -> ToolServer:
        app = self.mcp.streamable_http_app(host=self.host)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="on"
        )
        self._uvicorn = uvicorn.Server(config)
        self._task = asyncio.create_task(self._uvicorn.serve())
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        if self.port == 0:
            self.port = self._uvicorn.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.released.set()
        if self._uvicorn is not None and self._task is not None:
            self._uvicorn.should_exit = True
            self._uvicorn.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._uvicorn, self._task = None, None
        self.released = asyncio.Event()
        self.mcp = self._build()

    async def __aenter__(self) -> ToolServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve(host: str, port: int) -> None:
    async with ToolServer(host, port) as server:
        print(f"MCP tool server on {server.url}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sys.argv[1], int(sys.argv[2])))

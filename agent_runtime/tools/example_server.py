"""``agentry-runtime tool-server``: a small MCP server to try the tool loop with.

It serves three deterministic tools over streamable HTTP at ``/mcp`` with the official
SDK's ``MCPServer``: ``add(a, b)``, ``word_count(text)`` and ``utc_time()``. The demo
and the end-to-end test run it as a pod behind a Service (examples/tool-server.yaml);
it is an example to connect, not a part of the runtime an Agent needs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mcp.server.mcpserver import MCPServer


def build_server() -> MCPServer:
    server = MCPServer("agentry-example-tools")

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool()
    def word_count(text: str) -> int:
        """Count the words of a text."""
        return len(text.split())

    @server.tool()
    def utc_time() -> str:
        """The current time in UTC, ISO 8601."""
        return datetime.now(UTC).isoformat(timespec="seconds")

    return server


def serve(host: str, port: int) -> None:
    import uvicorn

    app = build_server().streamable_http_app(host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning")

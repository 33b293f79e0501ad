"""Tools: the Agent's MCP servers and the loop that lets the model call them.

``server.ToolServerClient`` keeps one connection to one MCP server (the official SDK's
streamable HTTP client), ``toolbox.Toolbox`` gathers every server's tools and runs calls
with a timeout and a circuit breaker per server, ``loop.run_tool_loop`` alternates model
calls and tool calls within one turn, and ``record`` is the shape a turn's tool calls take
in the session memory and on the surfaces. docs/tools.md describes the behaviour.

Nothing is imported here: every turn imports ``loop`` (its types), but only an Agent with
tool servers needs ``toolbox`` and ``server``, which load the MCP SDK and its
dependencies (about 19 MB of RSS); ``app.build_toolbox`` imports them then.
"""

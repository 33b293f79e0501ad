"""The ``agentry-runtime`` command: ``serve``, ``check-config`` and ``tool-server`` (an
example MCP server, ``tools/example_server.py``).

Exit codes: 0 success, 2 bad configuration (one line ``error: AGENTRY_X: reason``),
1 anything else unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence

import yaml

from agent_runtime.config import Settings, check_files, load_settings
from agent_runtime.errors import ConfigError
from agent_runtime.logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentry-runtime",
        description="The Agentry agent runtime. Configured by AGENTRY_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP API until SIGTERM")
    check = commands.add_parser(
        "check-config", help="validate the configuration and print it, secrets redacted"
    )
    check.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    tools = commands.add_parser(
        "tool-server", help="serve the example MCP tools (add, word_count, utc_time) at /mcp"
    )
    tools.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a pod's own address
    tools.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tool-server":
        from agent_runtime.tools.example_server import serve

        serve(args.host, args.port)
        return 0
    try:
        settings = load_settings()
        check_files(settings)
        if args.command == "check-config":
            return _check_config(settings, args.output)
        configure_logging(
            agent=settings.agent_name,
            replica=settings.replica,
            level=settings.effective_log_level,
        )
        from agent_runtime.lifecycle import run

        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(run(settings))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (Linux and macOS wheels), else asyncio's own.

    Its transports and scheduling are written in C: the bare aiohttp handler of
    docs/benchmarks.md serves about a third more requests on it, and the runtime gains
    more, having more callbacks per request. Nothing in the runtime depends on which loop
    runs it.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _check_config(settings: Settings, output: str) -> int:
    data = settings.redacted()
    if output == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0

"""The command line: sub-commands, their options, and help with examples."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from .commands import health, invoke, keys, lifecycle, logs, metrics, rotate, status, tools
from .environment import Env
from .errors import UsageError
from .formatting import OUTPUT_FORMATS
from .timing import parse_duration

Handler = Callable[[Env, argparse.Namespace], int]

DESCRIPTION = """\
Operate Agentry agents (agents.agentry.dev) from kubectl: status, health, metrics,
logs, start/stop/restart, key rotation, and sending a message.

Exit codes: 0 success; 1 the operation failed (failing health, HTTP error, timeout);
2 bad command line; 3 not found; 4 unauthorized or forbidden; 5 no cluster reachable.
"""


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    summary: str
    examples: str


COMMANDS = (
    Command(
        "status",
        status.run,
        "phase, readiness, conditions, requests, last checkpoint",
        "kubectl agent status support-bot\nkubectl agent status support-bot -n team-a -o yaml",
    ),
    Command(
        "health",
        health.run,
        "health of every replica's components (exit 1 when failing)",
        "kubectl agent health support-bot\n"
        "kubectl agent health support-bot -o json || echo 'not healthy'",
    ),
    Command(
        "metrics",
        metrics.run,
        "request statistics per replica and in total",
        "kubectl agent metrics support-bot\nkubectl agent metrics support-bot --watch -i 5",
    ),
    Command(
        "logs",
        logs.run,
        "logs of all replicas merged in time order",
        "kubectl agent logs support-bot --since 10m\nkubectl agent logs support-bot -f\n"
        "kubectl agent logs support-bot --raw | jq .message",
    ),
    Command(
        "start",
        lifecycle.start,
        "resume a suspended Agent and wait until it runs",
        "kubectl agent start support-bot\nkubectl agent start support-bot --no-wait",
    ),
    Command(
        "stop",
        lifecycle.stop,
        "suspend (final checkpoint, scale to zero) and wait",
        "kubectl agent stop support-bot\nkubectl agent stop support-bot --timeout 5m",
    ),
    Command(
        "restart",
        lifecycle.restart,
        "rolling restart of the Agent's pods",
        "kubectl agent restart support-bot\nkubectl agent restart support-bot --no-wait",
    ),
    Command(
        "rotate-key",
        rotate.run,
        "add a new state encryption key and make it active",
        "kubectl agent rotate-key support-bot\nkubectl agent rotate-key support-bot --no-wait",
    ),
    Command(
        "keys",
        keys.run,
        "export or import the Agent's key Secret (back up the keys to its memory)",
        "kubectl agent keys export support-bot -f support-bot-keys.yaml\n"
        "kubectl agent keys import support-bot -f support-bot-keys.yaml",
    ),
    Command(
        "invoke",
        invoke.run,
        "send a message through the API server's service proxy",
        'kubectl agent invoke support-bot "hello"\n'
        'kubectl agent invoke support-bot --session s1 "what did I just say?"\n'
        'kubectl agent invoke support-bot --session s1 --stream "tell me more"',
    ),
    Command(
        "tools",
        tools.run,
        "the Agent's MCP tool servers, their tools, health and call counts",
        "kubectl agent tools support-bot\nkubectl agent tools support-bot -o json",
    ),
)


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """-n, --context, --kubeconfig, -o: accepted before and after the sub-command."""
    default = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "-n",
        "--namespace",
        default=default,
        help="namespace of the Agent (default: the context's namespace)",
    )
    group.add_argument("--context", default=default, help="kubeconfig context to use")
    group.add_argument(
        "--kubeconfig",
        default=default,
        help="path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default=argparse.SUPPRESS if suppress else "table",
        help="output format (default: table)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(suppress=False)],
        epilog="Run 'kubectl agent COMMAND --help' for a command's options and examples.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = _global_options(suppress=True)
    for command in COMMANDS:
        sub = subcommands.add_parser(
            command.name,
            help=command.summary,
            description=command.summary[0].upper() + command.summary[1:] + ".",
            epilog="examples:\n" + _indent(command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[shared],
        )
        if command.name == "keys":
            sub.add_argument("action", choices=("export", "import"), help="export or import")
        sub.add_argument("name", metavar="NAME", help="name of the Agent")
        _add_options(command.name, sub)
        sub.set_defaults(handler=command.handler)
    return parser


def _add_options(name: str, sub: argparse.ArgumentParser) -> None:
    if name == "metrics":
        sub.add_argument("-w", "--watch", action="store_true", help="refresh until Ctrl-C")
        sub.add_argument(
            "-i",
            "--interval",
            type=_positive_float,
            default=2.0,
            help="seconds between refreshes with --watch (default: 2)",
        )
    elif name == "logs":
        sub.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
        sub.add_argument(
            "--since",
            metavar="DURATION",
            type=_duration,
            help="only lines newer than this, e.g. 30s, 10m, 2h",
        )
        sub.add_argument(
            "-p",
            "--previous",
            action="store_true",
            help="logs of the previous (crashed or restarted) container",
        )
        sub.add_argument("--tail", type=int, metavar="N", help="last N lines of each replica")
        sub.add_argument("-c", "--container", help="container (default: the agent container)")
        sub.add_argument(
            "--raw",
            action="store_true",
            help="print lines exactly as written (JSON stays JSON), no prefix",
        )
    elif name in ("start", "stop", "restart", "rotate-key"):
        sub.add_argument("--no-wait", action="store_true", help="return once the change is made")
        default = "5m" if name == "rotate-key" else "3m"
        sub.add_argument(
            "--timeout",
            default=default,
            metavar="DURATION",
            type=_duration,
            help=f"how long to wait (default: {default})",
        )
    elif name == "keys":
        sub.add_argument(
            "-f",
            "--file",
            metavar="FILE",
            help="export: write here (mode 0600) instead of stdout; import: read this ('-' stdin)",
        )
    elif name == "invoke":
        sub.add_argument("message", metavar="MESSAGE", help="the message to send")
        sub.add_argument(
            "--session", metavar="ID", help="session id to continue (default: a new random session)"
        )
        sub.add_argument(
            "--client-id", metavar="ID", help="X-Client-ID header (rate limiting per client)"
        )
        sub.add_argument(
            "--stream",
            action="store_true",
            help="print the reply as the model writes it (server-sent events)",
        )
        sub.add_argument(
            "--token-file",
            metavar="PATH",
            help="file holding your bearer token for an Agent with auth on; your sessions "
            "belong to its client id (default: none, the anonymous client of an Agent "
            "without auth)",
        )
    elif name == "tools":
        sub.add_argument(
            "--token-file",
            metavar="PATH",
            help="file holding your bearer token for an Agent with auth on",
        )


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

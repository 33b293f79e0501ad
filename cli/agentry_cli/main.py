"""Entry point of `kubectl-agent` (`kubectl agent ...`): parse, connect, run, exit.

User errors end with `error: <one line>` on stderr and the exit code of their
`CliError`; only bugs show a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from .arguments import build_parser
from .cluster import Cluster
from .environment import Env
from .errors import CliError
from .timing import Clock, SystemClock

Connector = Callable[[str | None, str | None], Cluster]
EXIT_INTERRUPTED = 130


def _connect(kubeconfig: str | None, context: str | None) -> Cluster:
    from .kube import connect  # imports the kubernetes client only when needed

    return connect(kubeconfig, context)


def main(
    argv: Sequence[str] | None = None,
    *,
    connect: Connector = _connect,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Clock | None = None,
) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        cluster = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        env = Env(
            cluster=cluster,
            namespace=getattr(args, "namespace", None) or cluster.namespace,
            output=getattr(args, "output", None) or "table",
            out=out,
            err=err,
            clock=clock or SystemClock(),
        )
        code: int = args.handler(env, args)
        return code
    except CliError as error:
        print(f"error: {error.message}", file=err, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0  # the reader (head, less) went away; nothing left to say

"""`agentry-operator`: load settings, serve metrics, and run kopf with our handlers.

The chart's Deployment runs `agentry-operator` (command set explicitly); flags override
the AGENTRY_OPERATOR_* settings for local runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from prometheus_client import start_http_server
from pydantic import ValidationError

from agentry_operator.lean_imports import hidden

with hidden("kubernetes", "kubernetes_asyncio"):  # see lean_imports: kopf would load them
    import kopf

from agentry_operator import credentials, handlers, metrics
from agentry_operator.credentials import CredentialsError
from agentry_operator.settings import OperatorSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="agentry-operator", description="Reconcile agents.agentry.dev into running agents."
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable); default: AGENTRY_OPERATOR_WATCH_NAMESPACES",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def configure_logging(level: str) -> None:
    """The operator's log format and level. No logger of the operator's process prints
    the bodies it reads (a Secret's data would land in the log; tests/e2e/
    test_secrets_in_logs.py runs the operator at debug to check)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(level.upper())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = OperatorSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "AGENTRY_OPERATOR_" + "_".join(str(p) for p in first["loc"]).upper()
        print(f"agentry-operator: invalid setting {name}: {first['msg']}", file=sys.stderr)
        return 2
    if args.namespace:
        settings = settings.model_copy(update={"watch_namespaces": args.namespace})
    if args.log_level:
        settings = settings.model_copy(update={"log_level": args.log_level})
    configure_logging(settings.log_level)
    try:
        # Once here, before kopf: its startup and login handlers would retry a kubeconfig
        # that can never work (an `exec` user, a missing file) every minute, forever.
        credentials.login(settings.kubeconfig)
    except CredentialsError as exc:
        print(f"agentry-operator: {exc}", file=sys.stderr)
        return 2
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.watch_namespaces,
        namespaces=settings.watch_namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

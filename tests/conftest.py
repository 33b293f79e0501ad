"""Fixtures shared by the end-to-end and the fault-injection suites: the operator
installed once per session by the Helm chart, running on the process node under the
chart's own ServiceAccount. The cluster itself is `agentry_cluster.pytest_plugin`'s."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "agentry"
RELEASE_NS = "agentry-system"
FAST_RUNTIME = {
    "AGENTRY_HEARTBEAT_INTERVAL_SECONDS": "2",
    "AGENTRY_MODEL_KEY_CHECK_INTERVAL_SECONDS": "2",
}


def pytest_configure(config: pytest.Config) -> None:
    """Let Ctrl-C through to the processes the tests start. A shell starts background jobs
    (`make test &`, some CI runners) with SIGINT ignored, children inherit that, and Python
    then installs no KeyboardInterrupt handler: the `kubectl agent ... --watch` and `-f`
    that the tests stop with SIGINT, as a user would, would never stop."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def operator(cluster: Any) -> Iterator[Any]:
    """Install (or upgrade) the chart with short intervals so tests see status quickly.

    Helm never upgrades CRDs, so on a reused cluster the current ones are applied first.
    """
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.helm(
        "upgrade",
        "--install",
        "agentry",
        str(CHART),
        "--namespace",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "operator.statusIntervalSeconds=2",
        "--set",
        "operator.driftIntervalSeconds=10",
        # Heartbeats every 2 s (FAST_RUNTIME): 20 s without one is a replica cut off
        # (the chaos suite's network cut waits for it), with room for a loaded machine.
        "--set",
        "operator.heartbeatStaleSeconds=20",
        "--set",
        "logLevel=debug",
        # Short runtime cadences so heartbeats and key checks show up within seconds
        # (spec.env may not set AGENTRY_*; the operator's agentDefaults.env may).
        "--set-json",
        f"agentDefaults.env={json.dumps(FAST_RUNTIME)}",
        "--wait",
        "--timeout",
        "180s",
    )
    try:
        yield cluster
    finally:
        cluster.helm("uninstall", "agentry", "--namespace", RELEASE_NS, check=False)

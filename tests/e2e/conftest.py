"""Shared fixtures of the end-to-end suite: the operator installed once per session by
the Helm chart, running on the process node under the chart's own ServiceAccount; and
the CRD alone, for tests of what the API server does with Agents."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentry"
RELEASE_NS = "agentry-system"
CRD = ROOT / "crds" / "agents.agentry.dev.yaml"
FAST_RUNTIME = {
    "AGENTRY_HEARTBEAT_INTERVAL_SECONDS": "2",
    "AGENTRY_MODEL_KEY_CHECK_INTERVAL_SECONDS": "2",
}


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


@pytest.fixture(scope="module")
def crd_installed(cluster: Any) -> Any:
    cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/agents.agentry.dev", "--timeout=60s"
    )
    # Discovery catches up a moment after Established.
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "agents.agentry.dev", "-A", check=False).returncode:
        if time.monotonic() > deadline:
            raise TimeoutError("agents.agentry.dev not served")
        time.sleep(0.2)
    return cluster

"""Shared fixtures of the end-to-end suite: the operator installed once per session by
the Helm chart, running on the process node under the chart's own ServiceAccount."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentry"
RELEASE_NS = "agentry-system"


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
        "--wait",
        "--timeout",
        "180s",
    )
    try:
        yield cluster
    finally:
        cluster.helm("uninstall", "agentry", "--namespace", RELEASE_NS, check=False)

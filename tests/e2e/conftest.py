"""Shared fixtures of the end-to-end suite: the CRD alone, for tests of what the API server
does with Agents. The operator installed by the chart (`operator`) is in tests/conftest.py,
shared with the fault-injection suite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "agents.agentry.dev.yaml"


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

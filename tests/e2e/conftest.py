"""Shared fixtures of the end-to-end suite: the CRD alone, for tests of what the API server
does with Agents, and the harvest of each test's Secrets for the log scan that runs last.
The operator installed by the chart (`operator`) is in tests/conftest.py, shared with the
fault-injection suite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.secret_scan import harvest_namespace

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "agents.agentry.dev.yaml"

LAST = "test_secrets_in_logs.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log scan runs after every other test of the session (chaos included), so the
    logs it reads are all the session wrote."""
    items.sort(key=lambda item: item.path.name == LAST)


@pytest.fixture(autouse=True)
def _harvest_secrets(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before a test's namespace goes, note its Secrets' values and where key data must
    not be (tests/support/secret_scan.py); the last test looks for them in every log."""
    if "namespace" not in request.fixturenames:
        yield
        return
    # Requested here, so the namespace is deleted after this fixture's teardown.
    namespace = request.getfixturevalue("namespace")
    cluster = request.getfixturevalue("cluster")
    yield
    harvest_namespace(cluster, namespace)


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

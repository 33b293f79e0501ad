"""The product on kind, for machines with a Docker engine.

On such a machine `make demo KIND=1` builds the image, creates a kind cluster, installs
the chart and invokes an Agent; this test runs exactly that. kindnet enforces
NetworkPolicy (the local cluster does not), so the Agent's policy is checked there too: a
pod of the Agent's namespace reaches its port, a pod of another namespace does not. Our own
machines have no Docker engine, so here it is skipped with the reason printed (`-ra` in
pytest's options).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _kind_unavailable_reason() -> str | None:
    for tool in ("kind", "docker"):
        if shutil.which(tool) is None:
            return f"kind end-to-end needs '{tool}' on PATH"
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    if probe.returncode != 0:
        return "kind end-to-end needs a running Docker engine ('docker info' failed)"
    return None


@pytest.mark.kind
def test_demo_on_kind_installs_the_chart_and_the_agent_answers() -> None:
    reason = _kind_unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "KIND": "1"}
    result = subprocess.run(
        [str(ROOT / "hack" / "demo.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Running" in result.stdout
    assert _fetch_from("default") == 0, "a pod of the Agent's namespace reaches its port"
    assert _fetch_from("np-outside") != 0, "the NetworkPolicy keeps other namespaces out"


def _kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["kubectl", "--context", "kind-agentry", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=180)


def _fetch_from(namespace: str) -> int:
    """Exit status of a one-off pod in `namespace` fetching the demo Agent's /livez."""
    if namespace != "default":
        _kubectl("create", "namespace", namespace)
    url = "http://demo.default.svc.cluster.local/livez"
    out = _kubectl(
        "run", "np-probe", "-n", namespace, "--rm", "-i", "--restart=Never",
        "--image=busybox:1.36", "--", "wget", "-q", "-T", "5", "-O-", url,
    )  # fmt: skip
    return out.returncode

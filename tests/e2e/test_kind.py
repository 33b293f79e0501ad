"""The product on kind, for machines with a Docker engine.

On such a machine `make demo KIND=1` builds the image, creates a kind cluster, installs
the chart and invokes an Agent; this test runs exactly that. Our own machines have no
Docker engine, so here it is skipped with the reason printed (`-ra` in pytest's options).
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

"""Render the Helm chart with the helm binary that hack/build-binaries.sh builds.

Used by the chart tests and by the alert-rule test, which both need rendered manifests;
a test is skipped with a reason until helm exists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentry"
KUBE_VERSION = "1.35.4"


def helm() -> Path:
    """The helm binary, or a skip when the cluster binaries are not built yet."""
    out = subprocess.run(
        [str(ROOT / "hack" / "build-binaries.sh"), "--print-dir"],
        capture_output=True,
        text=True,
        check=False,
    )
    path = Path(out.stdout.strip()) / "helm"
    if out.returncode != 0 or not path.exists():
        pytest.skip("helm not built yet (hack/build-binaries.sh)")
    return path


def template(*args: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with extra arguments (`--set ...`), not checked."""
    command = [str(helm()), "template", "agentry", str(CHART), "--namespace", "agentry-system"]
    command += ["--kube-version", KUBE_VERSION, "--include-crds", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def render(*values: str) -> list[dict[str, Any]]:
    """The rendered documents, each `values` entry passed as `--set`."""
    args = [arg for value in values for arg in ("--set", value)]
    out = template(*args)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]

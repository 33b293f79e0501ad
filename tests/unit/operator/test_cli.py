"""`agentry-operator` as a user starts it: a kubeconfig that can never work stops it at
once with the reason, instead of kopf retrying its login every minute."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kubeconfig import write_kubeconfig


def run_operator(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTRY_", "KUBE"))}
    env["KUBECONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "agentry_operator.cli", "--log-level", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("user", "says"),
    [
        (
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "gke-auth"}},
            "user 'dev-user' gets its credentials from 'exec'",
        ),
        ({"tokenFile": "/nonexistent/token"}, "/nonexistent/token"),
    ],
    ids=["exec-user", "missing-token-file"],
)
def test_a_kubeconfig_that_cannot_work_stops_the_operator_with_the_reason(
    tmp_path: Path, user: dict[str, object], says: str
) -> None:
    result = run_operator(write_kubeconfig(tmp_path / "config", "https://127.0.0.1:1", user))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("agentry-operator: kubeconfig "), result.stderr
    assert says in result.stderr


def test_a_missing_kubeconfig_file_is_named(tmp_path: Path) -> None:
    result = run_operator(tmp_path / "absent")
    assert result.returncode == 2, result.stderr
    assert str(tmp_path / "absent") in result.stderr

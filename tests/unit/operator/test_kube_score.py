"""`make lint` fails when a defect kube-score found in issue 14 comes back.

The operator's children for a production Agent (examples/agent-openai.yaml) pass
hack/kube-score.sh; each test breaks one thing the way a regression in the builders would
(a serviceName that is not headless, no requests, no memory limit, no ephemeral storage,
no spreading over nodes, the same probe for liveness and readiness) and expects the
script to fail naming it. kube-score comes from the binary cache that `make lint` fills.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_operator.models import Agent
from agentry_operator.render import children
from agentry_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "hack" / "kube-score.sh"


def _kube_score_built() -> bool:
    out = subprocess.run(
        [ROOT / "hack" / "build-binaries.sh", "--print-dir"], capture_output=True, text=True
    )
    return (Path(out.stdout.strip()) / "kube-score").exists()


pytestmark = pytest.mark.skipif(
    not _kube_score_built(), reason="kube-score is not built yet: `make lint` builds it"
)


def production_children() -> list[dict[str, Any]]:
    body = yaml.safe_load((ROOT / "examples" / "agent-openai.yaml").read_text())
    agent = Agent.from_body(body)
    assert agent.spec.environment == "production"
    return children(agent, OperatorSettings())


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    first: dict[str, Any] = sts["spec"]["template"]["spec"]["containers"][0]
    return first


def run(objs: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "children.yaml"
    manifest.write_text(yaml.safe_dump_all(objs))
    return subprocess.run(
        [SCRIPT, "--children", manifest], capture_output=True, text=True, timeout=120
    )


def test_the_operators_children_pass(tmp_path: Path) -> None:
    result = run(production_children(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no findings" in result.stdout


def _client_service_governs(objs: list[dict[str, Any]]) -> None:
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    sts["spec"]["serviceName"] = sts["metadata"]["name"]


def _no_requests(objs: list[dict[str, Any]]) -> None:
    del container(objs)["resources"]["requests"]


def _no_memory_limit(objs: list[dict[str, Any]]) -> None:
    del container(objs)["resources"]["limits"]["memory"]


def _no_ephemeral_storage(objs: list[dict[str, Any]]) -> None:
    for part in ("requests", "limits"):
        del container(objs)["resources"][part]["ephemeral-storage"]


def _no_spreading(objs: list[dict[str, Any]]) -> None:
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    sts["spec"]["template"]["spec"]["topologySpreadConstraints"] = None


def _same_probes(objs: list[dict[str, Any]]) -> None:
    container(objs)["readinessProbe"] = dict(container(objs)["livenessProbe"])


@pytest.mark.parametrize(
    ("defect", "finding"),
    [
        (_client_service_governs, "StatefulSet does not have a valid serviceName"),
        (_no_requests, "CPU request is not set"),
        (_no_memory_limit, "Memory limit is not set"),
        (_no_ephemeral_storage, "Ephemeral Storage request is not set"),
        (_no_spreading, "does not spread its pods over kubernetes.io/hostname"),
        (_same_probes, "Container has the same readiness and liveness probe"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_lint_fails_when_a_defect_comes_back(
    defect: Callable[[list[dict[str, Any]]], None], finding: str, tmp_path: Path
) -> None:
    objs = production_children()
    defect(objs)
    result = run(objs, tmp_path)
    assert result.returncode != 0
    assert finding in result.stderr

"""Every Agent in examples/ is one the operator accepts (what the README tells users to apply)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from agentry_operator.models import Agent

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_agent_validates(path: Path) -> None:
    agents = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Agent"]
    assert agents, f"{path.name} holds an Agent"
    for body in agents:
        Agent.from_body(body)


def test_the_examples_include_a_multi_replica_agent_on_postgres() -> None:
    specs = [
        d["spec"]
        for p in EXAMPLES
        for d in yaml.safe_load_all(p.read_text())
        if d and d.get("kind") == "Agent"
    ]
    assert any(
        s.get("replicas", 1) > 1 and s.get("state", {}).get("backend") == "postgres" for s in specs
    )

"""Shared pieces of the fault-injection suite: the short/full switch and the figures.

Every scenario prints its figures (``[chaos] scenario: name = value``) and appends them,
with the machine's load average, to ``.pytest_cache/d/chaos/figures.jsonl``, from which
docs/reliability.md's table is written. ``AGENTRY_CHAOS_FULL=1`` runs the durations and
counts of issue 12; without it each scenario runs a shorter version that fits in
``make test`` (docs/reliability.md says which figure came from which).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

FULL = os.environ.get("AGENTRY_CHAOS_FULL") == "1"


def scaled(short: float, full: float) -> float:
    """The short value in `make test`, the issue's value with AGENTRY_CHAOS_FULL=1."""
    return full if FULL else short


Figure = Callable[[str, Any], None]


@pytest.fixture
def figure(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Figure:
    """Record one measured figure of this scenario: printed and kept for the docs."""
    scenario = request.node.name.removeprefix("test_")
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    path = cache.mkdir("chaos") / "figures.jsonl" if cache is not None else None

    def record(name: str, value: Any) -> None:
        with capsys.disabled():
            print(f"\n[chaos] {scenario}: {name} = {value}", flush=True)
        line = {
            "scenario": scenario,
            "name": name,
            "value": value,
            "full": FULL,
            "load": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if path is not None:
            with path.open("a") as out:
                out.write(json.dumps(line) + "\n")

    return record

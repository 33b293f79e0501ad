"""The API server stopped while Agents are being created (cluster level).

Agents are applied, and a few seconds later, while the operator is creating their
children, kube-apiserver is stopped for 30 s (20 s in `make test`; 20 Agents with
AGENTRY_CHAOS_FULL=1, 3 otherwise), then started again with the same arguments. After it
returns every Agent must become Ready, each with exactly the children of one Agent (no
duplicate made by a retried create), and no key Secret seen before the outage may have
changed its bytes (a regenerated key would make the state written under it unreadable).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from agentry_cluster import faults
from agentry_cluster.layout import StateLayout

from tests.chaos import fleet
from tests.chaos.conftest import Figure, scaled
from tests.support.agents import agent_manifest, apply_all

pytestmark = pytest.mark.chaos


def test_agents_created_across_an_api_server_outage_all_become_ready_once_with_their_keys(
    operator: Any, namespace: str, figure: Figure
) -> None:
    count = int(scaled(3, 20))
    outage = scaled(20, 30)
    names = {f"outage-{n}" for n in range(count)}
    apply_all(operator, (agent_manifest(name, namespace, {}) for name in names))
    time.sleep(3)  # the operator is at work on them
    keys_before = fleet.key_digests(operator, namespace)

    layout = StateLayout(operator.state_dir)
    with faults.stopped(layout, "kube-apiserver"):
        time.sleep(outage)
    back = time.monotonic()

    fleet.wait_all(operator, namespace, names, timeout=scaled(240, 480))
    keys_after = fleet.key_digests(operator, namespace)
    shape = fleet.one_shape(fleet.children(operator, namespace))

    figure("agents", count)
    figure("outage_s", outage)
    figure("keys_existing_before_the_outage", len(keys_before))
    figure("all_ready_after_api_server_back_s", round(time.monotonic() - back, 1))
    assert set(keys_after) == names
    changed = [n for n, digest in keys_before.items() if keys_after[n] != digest]
    figure("keys_regenerated", len(changed))
    assert not changed, f"key Secrets regenerated: {changed}"
    assert shape["StatefulSet"] == ["*"], shape
    assert shape["Secret"] == ["*-keys"], shape

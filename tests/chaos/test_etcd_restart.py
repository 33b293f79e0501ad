"""etcd killed and restarted under reconcile load (cluster level).

Suspended Agents are applied (their children without pods: what is measured is the
operator's work, not pods starting on the process node); while the operator converges
them a thread keeps changing their specs, etcd is killed with SIGKILL, left down for 5 s
and started again on its data, and the changes go on for 5 s more (30 s with
AGENTRY_CHAOS_FULL=1). Then every Agent must reach a status for its latest generation
(none lost, none stuck), with one set of children and its key.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from agentry_cluster import faults
from agentry_cluster.layout import StateLayout

from tests.chaos import fleet
from tests.chaos.conftest import Figure, scaled
from tests.support.agents import agent_manifest, apply_all

pytestmark = pytest.mark.chaos

SUSPENDED = {"suspend": True}


class SpecChurn:
    """A thread that changes the Agents' instructions one after another until stopped;
    counts the changes the API server accepted and refused."""

    def __init__(self, cluster: Any, namespace: str, names: set[str]) -> None:
        self.cluster, self.namespace, self.names = cluster, namespace, sorted(names)
        self.accepted = self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            name = self.names[turn % len(self.names)]
            patch = json.dumps({"spec": {"instructions": f"change {turn}"}})
            result = self.cluster.kubectl(
                "patch",
                fleet.AGENTS,
                name,
                "-n",
                self.namespace,
                "--type=merge",
                "-p",
                patch,
                "--request-timeout=5s",
                check=False,
            )
            if result.returncode == 0:
                self.accepted += 1
            else:
                self.refused += 1
                time.sleep(0.5)
            turn += 1

    def __enter__(self) -> SpecChurn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_agents_converge_after_etcd_is_killed_under_reconcile_load(
    operator: Any, namespace: str, figure: Figure
) -> None:
    count = int(scaled(10, 30))
    names = {f"etcd-{n}" for n in range(count)}
    apply_all(operator, (agent_manifest(name, namespace, SUSPENDED) for name in names))
    layout = StateLayout(operator.state_dir)
    with SpecChurn(operator, namespace, names) as churn:
        time.sleep(3)
        with faults.stopped(layout, "etcd", kill=True):
            time.sleep(5)
        time.sleep(scaled(5, 30))
    settled = time.monotonic()
    fleet.wait_all(operator, namespace, names, timeout=180, want_ready=False)
    converged = time.monotonic() - settled
    found = fleet.agents(operator, namespace)
    phases = {a["status"]["phase"] for a in found.values()}
    keys = fleet.key_digests(operator, namespace)
    shape = fleet.one_shape(fleet.children(operator, namespace))

    figure("agents", count)
    figure("spec_changes_accepted_refused", f"{churn.accepted}/{churn.refused}")
    figure("all_at_latest_generation_after_load_s", round(converged, 1))
    assert churn.refused > 0, "the outage was seen by the API server's clients"
    assert phases == {"Suspended"}, phases
    assert set(keys) == names
    assert shape["StatefulSet"] == ["*"], shape

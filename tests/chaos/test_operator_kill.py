"""The operator killed with SIGKILL every 5 s while Agents are created, updated and
deleted (cluster level).

10 Agents (30 with AGENTRY_CHAOS_FULL=1) are created one by one, then each has its
instructions changed, then a third of them are deleted, while a thread kills the
operator's process every 5 s whenever one runs (the process node restarts it with the
kubelet's crash-loop back-off: at once, then after 10 s, 20 s, ...). The Agents are
suspended so that what is measured is the operator's work, not pods starting. Once the
killing stops: the operator comes back, every remaining Agent reaches its latest
generation with one set of children and the key it was first given, and the deleted
ones leave nothing behind but their key Secret (kept, as state.retainOnDelete says, with
its bytes unchanged). The figure is the time from the last kill to convergence.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from typing import Any

import pytest

from tests.chaos import fleet
from tests.chaos.conftest import Figure, scaled
from tests.support.agents import agent_manifest, apply_all
from tests.support.e2e import wait_for

pytestmark = pytest.mark.chaos

PERIOD = 5.0


class Killer:
    """Kills the operator's process every PERIOD seconds while it runs."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.kills = 0
        self.last_kill = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(PERIOD):
            pod = fleet.operator_pod(self.cluster)
            if pod is None:
                continue
            # The pod's status may still name a process that is already gone.
            with contextlib.suppress(AssertionError, ProcessLookupError):
                os.kill(fleet.operator_pid(pod), signal.SIGKILL)
                self.kills += 1
                self.last_kill = time.monotonic()

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_an_operator_killed_every_5_s_converges_without_leaked_children_or_new_keys(
    operator: Any, namespace: str, figure: Figure
) -> None:
    count = int(scaled(10, 30))
    names = [f"churn-{n}" for n in range(count)]
    deleted = set(names[::3])
    first_keys: dict[str, str] = {}

    def note_keys() -> None:
        for name, digest in fleet.key_digests(operator, namespace).items():
            first_keys.setdefault(name, digest)

    with Killer(operator) as killer:
        for name in names:
            apply_all(operator, [agent_manifest(name, namespace, {"suspend": True})])
            note_keys()
        for name in names:
            patch = json.dumps({"spec": {"instructions": f"updated {name}"}})
            operator.kubectl(
                "patch", fleet.AGENTS, name, "-n", namespace, "--type=merge", "-p", patch
            )
            note_keys()
        for name in sorted(deleted):
            operator.kubectl("delete", fleet.AGENTS, name, "-n", namespace, "--wait=false")
        # At least a few kills land while there is work in flight.
        wait_for(lambda: killer.kills >= 3, 60, "three kills of the operator")
    last_kill = killer.last_kill

    wait_for(lambda: fleet.operator_ready(operator), 300, "the operator Ready again")
    back = time.monotonic() - last_kill
    remaining = set(names) - deleted
    fleet.wait_all(operator, namespace, remaining, timeout=180, want_ready=False)

    def deleted_gone() -> set[str] | bool:
        left = set(fleet.agents(operator, namespace)) | set(fleet.children(operator, namespace))
        return not (left & deleted) or False

    wait_for(deleted_gone, 120, "the deleted Agents and their owned children gone")
    kept = fleet.children(operator, namespace, retained=True)
    converged = time.monotonic() - last_kill
    note_keys()
    final_keys = fleet.key_digests(operator, namespace)
    shapes = fleet.children(operator, namespace)

    figure("agents_created_updated_deleted", f"{count}/{count}/{len(deleted)}")
    figure("operator_kills", killer.kills)
    figure("operator_ready_after_last_kill_s", round(back, 1))
    figure("converged_after_last_kill_s", round(converged, 1))
    assert set(shapes) == remaining, "children of deleted Agents leaked"
    # retainOnDelete (the default) keeps exactly the key Secret of each deleted Agent that
    # had one (one deleted before any operator saw it never got a key).
    keyed = {name for name in deleted if name in first_keys}
    assert kept == {name: {"Secret": ["*-keys"]} for name in keyed}, (kept, keyed)
    shape = fleet.one_shape(shapes)
    assert shape["Secret"] == ["*-keys"], shape
    assert shape["StatefulSet"] == ["*"], shape
    regenerated = [n for n in names if final_keys.get(n) != first_keys.get(n)]
    figure("keys_regenerated", len(regenerated))
    assert not regenerated, regenerated

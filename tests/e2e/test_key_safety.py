"""An Agent is never locked out of its own memory by its key Secret (issue 17).

One Agent (configmap backend, so its state is visible in the API) walks through every
step on the local cluster with the chart-installed operator:
1. a turn of memory, a checkpoint, and `kubectl agent keys export`;
2. the generated key Secret deleted: Ready=False KeysMissing within one drift interval,
   naming the key id; no new Secret; the pod not restarted and still answering with
   its memory;
3. `kubectl agent keys import` of the export: Ready again, the same pod, memory intact;
4. the Secret edited to drop the needed id: the roll is held (KeyRollHeld), the pod
   stays; putting the key back releases it;
5. the Secret deleted again and the fresh start accepted with the annotation: a new
   `k-<8 hex>` key id, the old state kept aside as ConfigMaps, empty memory.
A second Agent on the pvc backend checks the fresh start there: the runtime moves the
files aside and starts with empty memory.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_lifecycle import (
    AGENTS,
    agent_status,
    base_url,
    ready_pod,
    remembered,
    say,
    wait_phase,
)
from tests.e2e.test_kubectl_agent import kubectl_agent
from tests.support.agents import apply_agent
from tests.support.e2e import get_json, wait_for

pytestmark = pytest.mark.e2e


def ready_reason(cluster: Any, namespace: str) -> str:
    conditions = agent_status(cluster, "mem", namespace).get("conditions") or []
    return next((c["reason"] for c in conditions if c["type"] == "Ready"), "")


def ready_message(cluster: Any, namespace: str) -> str:
    conditions = agent_status(cluster, "mem", namespace).get("conditions") or []
    return next((c["message"] for c in conditions if c["type"] == "Ready"), "")


def active_key(cluster: Any, namespace: str) -> str:
    secret = get_json(cluster, "secret", "mem-keys", "-n", namespace)
    return base64.b64decode(secret["data"]["active-key-id"]).decode()


def test_a_lost_key_secret_stops_the_operator_and_an_export_brings_the_agent_back(
    operator: Any, namespace: str, tmp_path: Path
) -> None:
    apply_agent(
        operator,
        "mem",
        namespace,
        {"state": {"backend": "configmap", "checkpointIntervalSeconds": 1}},
    )
    pod = ready_pod(operator, "mem", namespace)
    url = base_url(pod)
    assert say(url, "diary", "remember the lighthouse").status == 200
    key_id = active_key(operator, namespace)
    assert re.fullmatch(r"k-[0-9a-f]{8}", key_id)
    wait_for(
        lambda: (
            (agent_status(operator, "mem", namespace).get("lastCheckpoint") or {}).get("keyId")
            == key_id
        ),
        60,
        "a checkpoint under the generated key in the status",
    )
    backup = tmp_path / "mem-keys.yaml"
    exported = kubectl_agent(operator, "keys", "export", "mem", "-n", namespace, "-f", str(backup))
    assert exported.returncode == 0, exported.stderr
    assert "WARNING" in exported.stderr

    # 2. lost: the operator creates nothing and leaves the pod alone
    operator.kubectl("delete", "secret", "mem-keys", "-n", namespace)
    wait_for(lambda: ready_reason(operator, namespace) == "KeysMissing", 30, "KeysMissing")
    assert key_id in ready_message(operator, namespace)
    events = get_json(operator, "events", "-n", namespace)["items"]
    assert any(e["type"] == "Warning" and e["reason"] == "KeysMissing" for e in events)
    assert get_json(operator, "secret", "mem-keys", "-n", namespace) is None
    same = ready_pod(operator, "mem", namespace)
    assert same["metadata"]["uid"] == pod["metadata"]["uid"], "the pod was not restarted"
    assert remembered(url, "diary") == ["remember the lighthouse"]

    # 3. restored from the export: Ready, same pod, same memory
    imported = kubectl_agent(operator, "keys", "import", "mem", "-n", namespace, "-f", str(backup))
    assert imported.returncode == 0, imported.stderr
    wait_phase(operator, "mem", namespace, "Running", timeout=60)
    assert ready_pod(operator, "mem", namespace)["metadata"]["uid"] == pod["metadata"]["uid"]
    assert remembered(url, "diary") == ["remember the lighthouse"]

    # 4. an edit that drops the needed id holds the roll
    data = get_json(operator, "secret", "mem-keys", "-n", namespace)["data"]
    swap = {
        "data": {
            "active-key-id": base64.b64encode(b"k-0000beef").decode(),
            "key.k-0000beef": data[f"key.{key_id}"],
            f"key.{key_id}": None,
        }
    }
    operator.kubectl(
        "patch", "secret", "mem-keys", "-n", namespace, "--type=merge", "-p", json.dumps(swap)
    )
    wait_for(lambda: ready_reason(operator, namespace) == "KeyRollHeld", 30, "KeyRollHeld")
    assert key_id in ready_message(operator, namespace)
    assert ready_pod(operator, "mem", namespace)["metadata"]["uid"] == pod["metadata"]["uid"]
    back = {"data": {f"key.{key_id}": data[f"key.{key_id}"]}}
    operator.kubectl(
        "patch", "secret", "mem-keys", "-n", namespace, "--type=merge", "-p", json.dumps(back)
    )
    wait_for(lambda: ready_reason(operator, namespace) != "KeyRollHeld", 30, "roll released")
    # Released, the pods roll onto the Secret whose active key is now k-0000beef, and the
    # next checkpoint re-encrypts the state under it: that is the id the state needs now.
    wait_for(
        lambda: (
            (agent_status(operator, "mem", namespace).get("lastCheckpoint") or {}).get("keyId")
            == "k-0000beef"
        ),
        90,
        "a checkpoint under the new active key",
    )

    # 5. lost again, and a fresh start accepted: new key id, old state aside, empty memory
    operator.kubectl("delete", "secret", "mem-keys", "-n", namespace)
    wait_for(lambda: ready_reason(operator, namespace) == "KeysMissing", 30, "KeysMissing")
    operator.kubectl("annotate", AGENTS, "mem", "-n", namespace, "agentry.dev/accept-new-keys=true")
    new_id = wait_for(
        lambda: (
            get_json(operator, "secret", "mem-keys", "-n", namespace)
            and active_key(operator, namespace)
        ),
        120,
        "a new key Secret",
    )
    assert re.fullmatch(r"k-[0-9a-f]{8}", new_id)
    assert new_id != key_id
    aside = get_json(operator, "configmaps", "-n", namespace, "-l", "agentry.dev/set-aside")
    names = [cm["metadata"]["name"] for cm in aside["items"]]
    assert "mem-0-state" in {n.split(".set-aside-")[0] for n in names}, names
    commit = next(cm for cm in aside["items"] if cm["metadata"]["name"].startswith("mem-0-state."))
    assert "k-0000beef" in commit["metadata"]["annotations"]["agentry.dev/needs-key-ids"]
    fresh = ready_pod(operator, "mem", namespace)
    assert fresh["metadata"]["uid"] != pod["metadata"]["uid"]
    assert remembered(base_url(fresh), "diary") == []
    wait_phase(operator, "mem", namespace, "Running", timeout=120)
    annotations = get_json(operator, AGENTS, "mem", "-n", namespace)["metadata"]["annotations"]
    assert "agentry.dev/accept-new-keys" not in annotations


def test_a_fresh_start_on_the_pvc_backend_moves_the_files_aside_in_the_runtime(
    operator: Any, namespace: str
) -> None:
    state = {"backend": "pvc", "pvc": {"size": "16Mi"}, "checkpointIntervalSeconds": 1}
    apply_agent(operator, "mem", namespace, {"state": state})
    url = base_url(ready_pod(operator, "mem", namespace))
    assert say(url, "diary", "remember the harbour").status == 200
    wait_for(
        lambda: (agent_status(operator, "mem", namespace).get("lastCheckpoint") or {}).get("keyId"),
        60,
        "a checkpoint in the status",
    )
    operator.kubectl("delete", "secret", "mem-keys", "-n", namespace)
    wait_for(lambda: ready_reason(operator, namespace) == "KeysMissing", 30, "KeysMissing")
    assert "state-mem-0" in ready_message(operator, namespace)

    operator.kubectl("annotate", AGENTS, "mem", "-n", namespace, "agentry.dev/accept-new-keys=true")
    fresh = wait_for(
        lambda: (
            get_json(operator, "secret", "mem-keys", "-n", namespace)
            and ready_pod(operator, "mem", namespace)
        ),
        180,
        "a new key Secret and a ready pod",
    )
    assert remembered(base_url(fresh), "diary") == []
    logs = operator.kubectl("logs", "mem-0", "-n", namespace).stdout
    assert "fresh start accepted: old state set aside" in logs

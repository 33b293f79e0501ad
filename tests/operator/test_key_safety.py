"""The operator never locks an Agent out of its own memory (issue 17), against kmock.

Checks: generated key ids are random `k-<8 hex>` and recorded on the pod template; a
deleted key Secret of an Agent with sealed state gives Ready=False KeysMissing naming
the Secret and the key id, creates no new Secret and leaves the StatefulSet alone;
restoring the Secret clears it without a roll; the one-shot annotation
`agentry.dev/accept-new-keys=true` stops the pods, moves the state ConfigMaps aside
(copy, then delete), creates a key under a new id and removes the annotation; a key
Secret edited to drop the id the state needs holds the roll (KeyRollHeld) until the id
is back; a rotation that keeps the old id rolls.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from agentry_operator.kube import Kube
from agentry_operator.models import Agent
from agentry_operator.reconcile import KeyRollHeldError, Reconciler
from agentry_operator.settings import OperatorSettings

from tests.operator.test_lifecycle import AGENTS, HASH, STS, agent, lease, state_config_map

SECRETS = "v1/secrets"
CONFIGMAPS = "v1/configmaps"


def ready(api: Any) -> dict[str, Any]:
    status = api.get(AGENTS, "ns", "bot")["status"]
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def pod_notes(api: Any) -> dict[str, str]:
    return dict(api.get(STS, "ns", "bot")["spec"]["template"]["metadata"]["annotations"])


async def running_bot_with_memory(api: Any, eventually: Any) -> str:
    """An Agent whose heartbeat reports a checkpoint under the generated key; its key id."""
    await api.create(AGENTS, agent(replicas=1, state={"backend": "configmap"}))
    assert await eventually(lambda: api.get("v1/services", "ns", "bot"))
    key_id = api.get(SECRETS, "ns", "bot-keys")["stringData"]["active-key-id"]
    beat = lease("bot-0", 3, 0)
    doc = json.loads(beat["metadata"]["annotations"]["agentry.dev/heartbeat"])
    doc["lastCheckpoint"]["keyId"] = key_id
    beat["metadata"]["annotations"]["agentry.dev/heartbeat"] = json.dumps(doc)
    await api.create("coordination.k8s.io/v1/leases", beat)
    commit = {"current": {"slot": "a", "generation": 3, "key_id": key_id}}
    await api.create(CONFIGMAPS, state_config_map(data={"commit": json.dumps(commit)}))
    await api.patch(
        STS,
        "ns",
        "bot",
        {"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}},
    )
    assert await eventually(
        lambda: api.get(AGENTS, "ns", "bot")["status"]["lastCheckpoint"]["keyId"] == key_id
    )
    return str(key_id)


async def test_a_generated_key_has_a_random_id_recorded_on_the_pod_template(
    api: Any, operator: None, eventually: Any
) -> None:
    key_id = await running_bot_with_memory(api, eventually)
    assert re.fullmatch(r"k-[0-9a-f]{8}", key_id)
    notes = pod_notes(api)
    assert notes["agentry.dev/active-key-id"] == key_id
    assert notes["agentry.dev/key-ids"] == key_id


async def test_a_deleted_key_secret_is_keys_missing_and_nothing_is_regenerated(
    api: Any, operator: None, eventually: Any
) -> None:
    key_id = await running_bot_with_memory(api, eventually)
    secret = api.get(SECRETS, "ns", "bot-keys")
    rolled_with = pod_notes(api)[HASH]

    await api.delete(SECRETS, "ns", "bot-keys")
    assert await eventually(lambda: ready(api)["reason"] == "KeysMissing")
    message = ready(api)["message"]
    assert "bot-keys" in message
    assert key_id in message
    assert "agentry.dev/accept-new-keys=true" in message
    assert api.get(AGENTS, "ns", "bot")["status"]["phase"] == "Degraded"
    assert not await eventually(lambda: api.get(SECRETS, "ns", "bot-keys"), within=1.5)
    assert pod_notes(api)[HASH] == rolled_with, "the running pod is left alone"
    assert api.get(STS, "ns", "bot")["spec"]["replicas"] == 1

    restored = {k: secret[k] for k in ("apiVersion", "kind", "type", "stringData")}
    restored["metadata"] = {"name": "bot-keys", "namespace": "ns", "labels": {"team": "a"}}
    restored["metadata"]["labels"].update(secret["metadata"]["labels"])
    restored["metadata"]["ownerReferences"] = secret["metadata"]["ownerReferences"]
    await api.create(SECRETS, restored)
    assert await eventually(lambda: ready(api)["reason"] != "KeysMissing")
    assert pod_notes(api)[HASH] == rolled_with, "the same key ids: no roll"


async def test_an_accepted_fresh_start_sets_the_state_aside_and_uses_a_new_key_id(
    api: Any, operator: None, eventually: Any
) -> None:
    old_id = await running_bot_with_memory(api, eventually)
    state_before = api.get(CONFIGMAPS, "ns", "bot-0-state")
    await api.delete(SECRETS, "ns", "bot-keys")
    assert await eventually(lambda: ready(api)["reason"] == "KeysMissing")

    accept = {"metadata": {"annotations": {"agentry.dev/accept-new-keys": "true"}}}
    await api.patch(AGENTS, "ns", "bot", accept)
    assert await eventually(lambda: api.get(STS, "ns", "bot")["spec"]["replicas"] == 0)
    assert api.get(SECRETS, "ns", "bot-keys") is None, "no key while a pod may still write"
    await api.patch(STS, "ns", "bot", {"status": {"replicas": 0, "readyReplicas": 0}})

    new = await eventually(lambda: api.get(SECRETS, "ns", "bot-keys"))
    new_id = new["stringData"]["active-key-id"]
    assert new_id != old_id
    assert re.fullmatch(r"k-[0-9a-f]{8}", new_id)
    assert api.get(CONFIGMAPS, "ns", "bot-0-state") is None
    aside = [
        obj
        for (resource, _, name), obj in api.emulator.objects.items()
        if resource == CONFIGMAPS and name.startswith("bot-0-state.set-aside-") and not obj.deleted
    ]
    assert len(aside) == 1
    assert aside[0].raw["data"] == state_before["data"]
    assert aside[0].raw["metadata"]["annotations"]["agentry.dev/needs-key-ids"] == old_id
    assert await eventually(lambda: api.get(STS, "ns", "bot")["spec"]["replicas"] == 1)
    assert await eventually(lambda: pod_notes(api)["agentry.dev/active-key-id"] == new_id)
    annotations = api.get(AGENTS, "ns", "bot")["metadata"].get("annotations") or {}
    assert "agentry.dev/accept-new-keys" not in annotations, "the consent is one-shot"


async def test_a_key_secret_without_the_needed_id_holds_the_roll(
    api: Any, operator: None, eventually: Any
) -> None:
    key_id = await running_bot_with_memory(api, eventually)
    old_key = api.get(SECRETS, "ns", "bot-keys")["stringData"][f"key.{key_id}"]
    rolled_with = pod_notes(api)[HASH]
    swap = {
        "stringData": {
            "active-key-id": "k-0000beef",
            "key.k-0000beef": "A" * 43 + "=",
            f"key.{key_id}": None,
        }
    }
    await api.patch(SECRETS, "ns", "bot-keys", swap)
    assert await eventually(lambda: ready(api)["reason"] == "KeyRollHeld")
    assert key_id in ready(api)["message"]
    assert pod_notes(api)[HASH] == rolled_with

    keep_both = {"stringData": {f"key.{key_id}": old_key}}
    await api.patch(SECRETS, "ns", "bot-keys", keep_both)
    assert await eventually(lambda: pod_notes(api)[HASH] != rolled_with)
    assert pod_notes(api)["agentry.dev/key-ids"] == ",".join(sorted([key_id, "k-0000beef"]))
    assert await eventually(lambda: ready(api)["reason"] != "KeyRollHeld")


async def test_a_create_handler_run_again_on_a_stale_body_still_holds_the_roll(
    api: Any, operator_settings: OperatorSettings
) -> None:
    """kopf may run the create handler twice (a retry, or a stale event from before its
    own annotation patch: kmock keeps resourceVersion "1"), with an empty status. That run
    must still see the ring the pods were given, from the live StatefulSet, and hold."""
    body = agent(replicas=1, state={"backend": "configmap"})
    await api.create(AGENTS, body)
    kube = await Kube.connect(operator_settings.kubeconfig)
    try:
        reconciler = Reconciler(kube=kube, settings=operator_settings)
        await reconciler.converge(Agent.from_body(body), new=True, status={})
        key_id = api.get(SECRETS, "ns", "bot-keys")["stringData"]["active-key-id"]
        rolled_with = pod_notes(api)[HASH]
        swap = {"stringData": {"active-key-id": "k-0000beef", "key.k-0000beef": "A" * 43 + "="}}
        swap["stringData"][f"key.{key_id}"] = None
        await api.patch(SECRETS, "ns", "bot-keys", swap)
        with pytest.raises(KeyRollHeldError, match=key_id):
            await reconciler.converge(Agent.from_body(body), new=True, status={})
        assert pod_notes(api)[HASH] == rolled_with
    finally:
        await kube.close()

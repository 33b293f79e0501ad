"""`kubectl agent rotate-key`: a new active key, old keys kept, done when a checkpoint uses it."""

from __future__ import annotations

import base64
import json

import pytest
from agentry_cli.keyring import next_key_id, rotation_patch


def heartbeat_key(fake_cluster, index, key_id):
    def apply() -> None:
        annotations = fake_cluster.leases[index]["metadata"]["annotations"]
        record = json.loads(annotations["agentry.dev/heartbeat"])
        record["lastCheckpoint"]["keyId"] = key_id
        annotations["agentry.dev/heartbeat"] = json.dumps(record)

    return apply


def test_rotate_key_adds_a_32_byte_key_and_makes_it_active_keeping_the_old(
    kubectl_agent, fake_cluster
):
    result = kubectl_agent("rotate-key", "demo", "--no-wait")

    data = fake_cluster.secrets["demo-keys"]["data"]
    assert result.code == 0
    assert sorted(data) == ["active-key-id", "key.k1", "key.k2"]
    assert base64.b64decode(data["active-key-id"]) == b"k2"
    key_file = base64.b64decode(data["key.k2"])  # what the runtime reads from the mounted file
    assert len(base64.b64decode(key_file)) == 32
    assert "key k2 added to Secret demo-keys and made active (previous k1" in result.out


def test_rotate_key_guards_against_a_concurrent_change_with_the_resource_version(fake_cluster):
    _, patch = rotation_patch(fake_cluster.secrets["demo-keys"])

    assert patch["metadata"]["resourceVersion"] == "800"


def test_each_rotation_draws_fresh_random_bytes(fake_cluster):
    secret = fake_cluster.secrets["demo-keys"]

    first = rotation_patch(secret)[1]["data"]["key.k2"]
    second = rotation_patch(secret)[1]["data"]["key.k2"]

    assert first != second


@pytest.mark.parametrize(
    ("existing", "expected"),
    [([], "k1"), (["k1"], "k2"), (["k1", "k7", "k3"], "k8"), (["primary"], "k1")],
)
def test_the_new_key_id_follows_the_highest_numbered_one(existing, expected):
    assert next_key_id(existing) == expected


def test_rotate_key_waits_until_every_replica_checkpointed_with_the_new_key(
    kubectl_agent, fake_cluster, clock
):
    clock.reactions += [heartbeat_key(fake_cluster, 0, "k2"), heartbeat_key(fake_cluster, 1, "k2")]

    result = kubectl_agent("rotate-key", "demo", "-o", "json")

    document = json.loads(result.out)
    assert result.code == 0
    assert document["confirmedBy"] == "heartbeats"
    assert document["keyIds"] == ["k1", "k2"]
    assert len(clock.slept) == 2


def test_rotate_key_is_also_done_when_the_agent_status_reports_the_new_key(
    kubectl_agent, fake_cluster, clock
):
    def operator_reports() -> None:
        fake_cluster.agents["demo"]["status"]["lastCheckpoint"]["keyId"] = "k2"

    clock.reactions.append(operator_reports)

    result = kubectl_agent("rotate-key", "demo")

    assert result.code == 0
    assert "reported by the Agent status" in result.out


def test_rotate_key_times_out_when_no_checkpoint_uses_the_key(kubectl_agent, clock):
    result = kubectl_agent("rotate-key", "demo", "--timeout", "30s")

    assert result.code == 1
    assert "timed out after 30s waiting for a checkpoint of Agent demo written with key k2" in (
        result.err
    )


def test_rotate_key_uses_the_secret_named_in_the_spec(kubectl_agent, fake_cluster):
    fake_cluster.agents["demo"]["spec"]["state"] = {
        "encryption": {"keySecretRef": {"name": "byo-keys"}}
    }
    fake_cluster.secrets["byo-keys"] = fake_cluster.secrets.pop("demo-keys")

    assert kubectl_agent("rotate-key", "demo", "--no-wait").code == 0
    assert fake_cluster.patches[0][:2] == ("Secret", "byo-keys")


def test_rotate_key_without_a_key_secret_explains_who_creates_it(kubectl_agent, fake_cluster):
    fake_cluster.secrets.clear()

    result = kubectl_agent("rotate-key", "demo")

    assert result.code == 3
    assert 'key Secret "demo-keys" of Agent demo not found' in result.err


def test_rotate_key_of_a_suspended_agent_does_not_wait(kubectl_agent, fake_cluster, clock):
    fake_cluster.agents["demo"]["spec"]["suspend"] = True

    result = kubectl_agent("rotate-key", "demo")

    assert result.code == 0
    assert clock.slept == []
    assert "runs no replicas" in result.err

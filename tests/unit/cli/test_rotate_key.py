"""`kubectl agent rotate-key`: a new active key, old keys kept, done when a checkpoint uses it."""

from __future__ import annotations

import base64
import json
import re

from agentry_cli.keyring import next_key_id, rotation_patch

from tests.unit.cli.conftest import report_state

RANDOM_ID = re.compile(r"k-[0-9a-f]{8}")


def active_id(fake_cluster) -> str:
    return base64.b64decode(fake_cluster.secrets["demo-keys"]["data"]["active-key-id"]).decode()


def heartbeat_key(fake_cluster, index):
    """A replica reports a checkpoint under whatever key is active by then."""

    def apply() -> None:
        annotations = fake_cluster.leases[index]["metadata"]["annotations"]
        record = json.loads(annotations["agentry.dev/heartbeat"])
        record["lastCheckpoint"]["keyId"] = active_id(fake_cluster)
        annotations["agentry.dev/heartbeat"] = json.dumps(record)

    return apply


def test_rotate_key_adds_a_32_byte_key_and_makes_it_active_keeping_the_old(
    kubectl_agent, fake_cluster
):
    result = kubectl_agent("rotate-key", "demo", "--no-wait")

    data = fake_cluster.secrets["demo-keys"]["data"]
    new_id = active_id(fake_cluster)
    assert result.code == 0
    assert RANDOM_ID.fullmatch(new_id)
    assert sorted(data) == sorted(["active-key-id", "key.k1", f"key.{new_id}"])
    key_file = base64.b64decode(data[f"key.{new_id}"])  # what the runtime reads from the file
    assert len(base64.b64decode(key_file)) == 32
    assert f"key {new_id} added to Secret demo-keys and made active (previous k1" in result.out


def test_rotate_key_guards_against_a_concurrent_change_with_the_resource_version(fake_cluster):
    _, patch = rotation_patch(fake_cluster.secrets["demo-keys"])

    assert patch["metadata"]["resourceVersion"] == "800"


def test_each_rotation_draws_fresh_random_bytes(fake_cluster):
    secret = fake_cluster.secrets["demo-keys"]

    first_id, first = rotation_patch(secret)
    second_id, second = rotation_patch(secret)

    assert first_id != second_id
    assert first["data"][f"key.{first_id}"] != second["data"][f"key.{second_id}"]


def test_a_new_key_id_is_random_and_never_one_already_in_the_secret():
    draws = iter([b"\x00\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"])

    assert next_key_id(["k-00000001"], lambda n: next(draws)) == "k-00000002"
    assert len({next_key_id(["k1"]) for _ in range(50)}) == 50


def test_rotate_key_waits_until_every_replica_checkpointed_with_the_new_key(
    kubectl_agent, fake_cluster, clock
):
    clock.reactions += [heartbeat_key(fake_cluster, 0), heartbeat_key(fake_cluster, 1)]

    result = kubectl_agent("rotate-key", "demo", "-o", "json")

    document = json.loads(result.out)
    assert result.code == 0
    assert document["confirmedBy"] == "heartbeats"
    assert document["keyIds"] == ["k1", active_id(fake_cluster)]
    assert len(clock.slept) == 2


def test_rotate_key_is_also_done_when_the_agent_status_reports_the_new_key(
    kubectl_agent, fake_cluster, clock
):
    def operator_reports() -> None:
        fake_cluster.agents["demo"]["status"]["lastCheckpoint"]["keyId"] = active_id(fake_cluster)

    clock.reactions.append(operator_reports)

    result = kubectl_agent("rotate-key", "demo")

    assert result.code == 0
    assert "reported by the Agent status" in result.out


def test_rotate_key_times_out_when_no_checkpoint_uses_the_key(kubectl_agent, fake_cluster, clock):
    result = kubectl_agent("rotate-key", "demo", "--timeout", "30s")

    assert result.code == 1
    expected = f"waiting for a checkpoint of Agent demo written with key {active_id(fake_cluster)}"
    assert f"timed out after 30s {expected}" in result.err


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


def test_on_postgres_rotate_key_waits_until_no_row_is_under_the_old_key(
    kubectl_agent, postgres_agent, clock
):
    def sealing_with_the_new_key_rows_left(index: int, rows: int):
        return lambda: report_state(
            postgres_agent, index, activeKeyId=active_id(postgres_agent), rowsUnderOldKeys=rows
        )

    clock.reactions += [
        sealing_with_the_new_key_rows_left(0, 30),  # pods rolled: new key, old rows remain
        sealing_with_the_new_key_rows_left(1, 30),
        sealing_with_the_new_key_rows_left(0, 0),  # the re-encryption pass moved them
        sealing_with_the_new_key_rows_left(1, 0),
    ]

    result = kubectl_agent("rotate-key", "demo")

    assert result.code == 0, result.err
    assert len(clock.slept) == 4, "not done while rows are left under the old key"
    assert "no row is left under an older key" in result.out
    assert "waiting for every row of Agent demo sealed with key" in result.err


def test_on_postgres_a_checkpoint_key_does_not_end_the_wait(kubectl_agent, postgres_agent, clock):
    clock.reactions += [heartbeat_key(postgres_agent, 0), heartbeat_key(postgres_agent, 1)]
    report_state(postgres_agent, 0, rowsUnderOldKeys=5)

    result = kubectl_agent("rotate-key", "demo", "--timeout", "10")

    assert result.code != 0
    assert "every row of Agent demo sealed with key" in result.err

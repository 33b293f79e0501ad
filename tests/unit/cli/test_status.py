"""`kubectl agent status`: what the operator reports, readable at a glance and as data."""

from __future__ import annotations

import json

import yaml

from tests.unit.cli.conftest import report_state


def test_status_shows_phase_readiness_metrics_and_checkpoint_age(kubectl_agent):
    result = kubectl_agent("status", "demo")

    assert result.code == 0
    assert "Phase:" in result.out
    assert "Running" in result.out
    assert "2/2" in result.out
    assert "120" in result.out  # requests
    assert "6 (5.0%)" in result.out  # errors with the error rate
    assert "12.0ms" in result.out  # p95
    assert "42s ago, generation 7, 4096 bytes, key k1" in result.out


def test_status_lists_conditions_with_reasons(kubectl_agent):
    out = kubectl_agent("status", "demo").out

    ready_row = next(line for line in out.splitlines() if line.strip().startswith("Ready "))
    assert "True" in ready_row
    assert "AllReplicasReady" in ready_row
    assert "10m" in ready_row


def test_status_as_json_carries_the_same_facts_for_scripts(kubectl_agent):
    document = json.loads(kubectl_agent("status", "demo", "-o", "json").out)

    assert document["phase"] == "Running"
    assert document["readyReplicas"] == 2
    assert document["metrics"]["throttled"] == 9
    assert document["lastCheckpoint"]["keyId"] == "k1"
    assert document["lastCheckpoint"]["ageSeconds"] == 42
    assert document["conditions"][0]["reason"] == "AllReplicasReady"


def test_status_as_yaml_parses(kubectl_agent):
    document = yaml.safe_load(kubectl_agent("-o", "yaml", "status", "demo").out)

    assert document["name"] == "demo"
    assert document["namespace"] == "team-a"


def test_status_says_when_the_operator_has_not_caught_up_with_the_spec(kubectl_agent, fake_cluster):
    fake_cluster.agents["demo"]["metadata"]["generation"] = 4

    out = kubectl_agent("status", "demo").out

    assert "status is for generation 3, spec is at 4" in out


def test_status_of_a_new_agent_without_status_is_pending(kubectl_agent, fake_cluster):
    del fake_cluster.agents["demo"]["status"]
    fake_cluster.agents["demo"]["metadata"].pop("generation")

    result = kubectl_agent("status", "demo")

    assert result.code == 0
    assert "Pending" in result.out
    assert "none yet" in result.out


def test_status_uses_the_namespace_given_with_n(kubectl_agent, fake_cluster):
    kubectl_agent("status", "demo", "-n", "elsewhere")

    assert ("get_agent", "elsewhere", "demo") in fake_cluster.calls


def test_global_options_work_before_the_command_too(kubectl_agent, fake_cluster):
    kubectl_agent("-n", "elsewhere", "status", "demo")

    assert ("get_agent", "elsewhere", "demo") in fake_cluster.calls


def test_status_shows_the_postgres_backend_its_sessions_and_rows_under_old_keys(
    kubectl_agent, postgres_agent
):
    report_state(postgres_agent, 1, rowsUnderOldKeys=7)

    text = kubectl_agent("status", "demo").out
    document = json.loads(kubectl_agent("status", "demo", "-o", "json").out)

    assert "postgres: 42 sessions in the database, 7 rows under old keys" in text
    assert document["state"] == {
        "backend": "postgres",
        "sessions": 42,  # every replica counts the same database: not a sum
        "rowsUnderOldKeys": 7,
        "activeKeyIds": ["k1"],
    }


def test_status_of_a_single_replica_backend_counts_the_sessions_in_memory(
    kubectl_agent, fake_cluster
):
    report_state(fake_cluster, 0, backend="pvc", sessions=3)
    report_state(fake_cluster, 1, backend="pvc", sessions=4)

    assert "pvc: 7 sessions in memory" in kubectl_agent("status", "demo").out

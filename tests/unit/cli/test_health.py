"""`kubectl agent health`: replica components from the heartbeat Leases; exit 1 on failure."""

from __future__ import annotations

import json

from agentry_cli.heartbeats import parse_lease


def test_health_exits_1_and_names_the_failing_component_of_the_failing_replica(kubectl_agent):
    result = kubectl_agent("health", "demo")

    assert result.code == 1
    assert "demo-1: model: connection refused" in result.out
    assert "demo-0:" not in result.out


def test_health_exits_0_when_every_replica_is_healthy(kubectl_agent, fake_cluster):
    fake_cluster.leases = [fake_cluster.leases[0]]
    fake_cluster.agents["demo"]["spec"]["replicas"] = 1

    result = kubectl_agent("health", "demo")

    assert result.code == 0
    assert "All 1 replica(s) healthy." in result.out


def test_health_table_has_a_row_per_replica_and_a_column_per_component(kubectl_agent):
    lines = kubectl_agent("health", "demo").out.splitlines()

    assert lines[0].split() == [
        "REPLICA",
        "READY",
        "STATE",
        "MODEL",
        "DISK",
        "ENCRYPTION",
        "CIRCUIT",
        "HEARTBEAT",
    ]
    assert lines[1].split() == ["demo-0", "true", "ok", "ok", "ok", "ok", "closed", "5s", "ago"]
    assert lines[2].split()[:4] == ["demo-1", "true", "ok", "failed"]


def test_health_ignores_leases_of_replicas_scaled_away_and_of_other_agents(kubectl_agent):
    document = json.loads(kubectl_agent("health", "demo", "-o", "json").out)

    assert [r["replica"] for r in document["replicas"]] == ["demo-0", "demo-1"]


def test_a_replica_without_a_heartbeat_counts_as_failing(kubectl_agent, fake_cluster):
    fake_cluster.agents["demo"]["spec"]["replicas"] = 3
    fake_cluster.leases = [
        lease for lease in fake_cluster.leases if lease["metadata"]["name"] != "demo-2-heartbeat"
    ]

    result = kubectl_agent("health", "demo")

    assert result.code == 1
    assert "demo-2: no heartbeat yet" in result.out


def test_a_stale_heartbeat_counts_as_failing(kubectl_agent, fake_cluster):
    fake_cluster.agents["demo"]["spec"]["replicas"] = 3

    result = kubectl_agent("health", "demo", "-o", "json")

    replica = json.loads(result.out)["replicas"][2]
    assert result.code == 1
    assert "heartbeat stale (last renewed 7200s ago)" in replica["problems"]


def test_health_of_a_suspended_agent_has_nothing_to_check_and_succeeds(kubectl_agent, fake_cluster):
    fake_cluster.agents["demo"]["spec"]["suspend"] = True

    result = kubectl_agent("health", "demo")

    assert result.code == 0
    assert "no replicas to check: it is suspended" in result.out


def test_an_unreadable_heartbeat_annotation_is_reported_not_crashed_on(fake_cluster, clock):
    lease = fake_cluster.leases[0]
    lease["metadata"]["annotations"]["agentry.dev/heartbeat"] = "{not json"

    beat = parse_lease("demo-0", lease, clock.now())

    assert beat.problems() == ["unreadable agentry.dev/heartbeat annotation"]


def test_on_postgres_health_shows_the_database_of_each_replica(kubectl_agent, postgres_agent):
    annotations = postgres_agent.leases[1]["metadata"]["annotations"]
    record = json.loads(annotations["agentry.dev/heartbeat"])
    record["health"] = {**record["health"], "model": "ok", "state": "failed: database unreachable"}
    annotations["agentry.dev/heartbeat"] = json.dumps(record)

    result = kubectl_agent("health", "demo")
    document = json.loads(kubectl_agent("health", "demo", "-o", "json").out)

    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0].split()[2:7] == ["STATE", "MODEL", "DISK", "ENCRYPTION", "DATABASE"]
    assert lines[2].split()[:7] == ["demo-1", "true", "failed", "ok", "ok", "ok", "failed"]
    assert "demo-1: state: database unreachable" in result.out
    assert document["replicas"][0]["components"]["database"] == "ok"
    assert document["replicas"][1]["components"]["database"] == "failed: database unreachable"


def test_without_postgres_there_is_no_database_column(kubectl_agent):
    assert "DATABASE" not in kubectl_agent("health", "demo").out

"""`kubectl agent health NAME`: every replica's components, from the heartbeat Leases.

On the postgres backend the state store is the database: each replica's `state` check
(the database reachable, the schema known) is also shown as the `database` component.
Exit code 1 when any replica is failing: a component reports `failed: ...`, the replica
is not ready, or its heartbeat is missing or stale (a replica that stopped reporting
cannot be called healthy). Exit code 0 otherwise, including a suspended Agent.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import agents, heartbeats
from ..environment import Env
from ..errors import EXIT_FAILED, EXIT_OK
from ..formatting import table
from ..heartbeats import COMPONENTS, Heartbeat
from ..timing import format_age


def run(env: Env, args: argparse.Namespace) -> int:
    agent = env.cluster.get_agent(env.namespace, args.name)
    beats = heartbeats.for_agent(agent, env.cluster.list_leases(env.namespace), env.clock.now())
    report = build_report(agent, beats)
    env.show(report, render_table)
    return EXIT_OK if report["healthy"] else EXIT_FAILED


def build_report(agent: dict[str, Any], beats: list[Heartbeat]) -> dict[str, Any]:
    replicas = []
    for beat in beats:
        problems = beat.problems()
        components = {name: beat.health.get(name) for name in COMPONENTS}
        if beat.store.get("backend") == "postgres":
            components["database"] = beat.health.get("state")
        replicas.append(
            {
                "replica": beat.replica,
                "healthy": not problems,
                "ready": beat.ready,
                "circuit": beat.circuit,
                "components": components,
                "heartbeatAgeSeconds": None
                if beat.age_seconds is None
                else round(beat.age_seconds),
                "problems": problems,
            }
        )
    return {
        "name": agents.name_of(agent),
        "namespace": agent.get("metadata", {}).get("namespace"),
        "suspended": agents.is_suspended(agent),
        "healthy": all(r["healthy"] for r in replicas),
        "replicas": replicas,
    }


def _short(value: str | None) -> str | None:
    """`ok` stays, `failed: long reason` becomes `failed` (reasons are listed below)."""
    if value is None:
        return None
    return "ok" if value == "ok" else "failed"


def render_table(report: dict[str, Any]) -> str:
    if not report["replicas"]:
        why = "it is suspended" if report["suspended"] else "it has 0 replicas"
        return f"Agent {report['name']} has no replicas to check: {why}."
    names = list(COMPONENTS)
    if any("database" in r["components"] for r in report["replicas"]):
        names.append("database")
    rows = []
    for r in report["replicas"]:
        age = r["heartbeatAgeSeconds"]
        rows.append(
            [
                r["replica"],
                r["ready"],
                *(_short(r["components"].get(name)) for name in names),
                r["circuit"],
                None if age is None else f"{format_age(age)} ago",
            ]
        )
    headers = ["REPLICA", "READY", *(n.upper() for n in names), "CIRCUIT", "HEARTBEAT"]
    text = table(headers, rows)
    failing = [(r["replica"], p) for r in report["replicas"] for p in r["problems"]]
    if failing:
        text += "\n\nFailing:\n" + "\n".join(f"  {replica}: {p}" for replica, p in failing)
    else:
        text += f"\n\nAll {len(rows)} replica(s) healthy."
    return text

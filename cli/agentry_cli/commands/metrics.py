"""`kubectl agent metrics NAME`: request statistics per replica and in sum.

Counters come from the heartbeat Leases and are cumulative since each replica's
process started. Percentiles cannot be added up across replicas; the total row shows
the largest replica value, which bounds the Agent-wide percentile from above.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import agents, heartbeats
from ..environment import Env
from ..formatting import millis, percent, render, table
from ..heartbeats import COUNTERS, Heartbeat
from ..timing import rfc3339

CLEAR_SCREEN = "\033[H\033[2J"


def run(env: Env, args: argparse.Namespace) -> int:
    if not args.watch:
        env.show(collect(env, args.name), render_table)
        return 0
    try:
        while True:
            report = collect(env, args.name)
            if env.structured:
                # One document per refresh: JSON lines, or YAML documents separated by ---.
                if env.output == "json":
                    env.emit(json.dumps(report))
                else:
                    env.emit("---\n" + render(report, "yaml"))
            else:
                prefix = CLEAR_SCREEN if env.out.isatty() else ""
                stamp = f"{report['time']}  (every {args.interval:g}s, Ctrl-C to stop)"
                env.emit(prefix + stamp + "\n" + render_table(report) + "\n")
            env.clock.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def collect(env: Env, name: str) -> dict[str, Any]:
    agent = env.cluster.get_agent(env.namespace, name)
    now = env.clock.now()
    beats = heartbeats.for_agent(agent, env.cluster.list_leases(env.namespace), now)
    report = build_report(agent, beats)
    report["time"] = rfc3339(now)
    return report


def replica_row(beat: Heartbeat) -> dict[str, Any]:
    metrics = beat.metrics
    row: dict[str, Any] = {"replica": beat.replica, "reporting": beat.found and not beat.stale}
    for counter in COUNTERS:
        value = metrics.get(counter)
        row[counter] = value if isinstance(value, int) else None
    row["errorRate"] = _rate(row["errors"], row["requests"])
    row["p50Ms"] = _number(metrics.get("p50Ms"))
    row["p95Ms"] = _number(metrics.get("p95Ms"))
    return row


def build_report(agent: dict[str, Any], beats: list[Heartbeat]) -> dict[str, Any]:
    rows = [replica_row(beat) for beat in beats]
    total: dict[str, Any] = {"replica": "TOTAL"}
    for counter in COUNTERS:
        values = [r[counter] for r in rows if r[counter] is not None]
        total[counter] = sum(values) if values else None
    total["errorRate"] = _rate(total["errors"], total["requests"])
    for key in ("p50Ms", "p95Ms"):
        values = [r[key] for r in rows if r[key] is not None]
        total[key] = max(values) if values else None
    return {
        "name": agents.name_of(agent),
        "namespace": agent.get("metadata", {}).get("namespace"),
        "replicas": rows,
        "total": total,
    }


def _rate(errors: int | None, requests: int | None) -> float | None:
    if errors is None or not requests:
        return None
    return errors / requests


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def render_table(report: dict[str, Any]) -> str:
    if not report["replicas"]:
        return f"Agent {report['name']} has no running replicas."
    headers = [
        "REPLICA",
        "REQUESTS",
        "OK",
        "DEGRADED",
        "ERRORS",
        "THROTTLED",
        "REJECTED",
        "ERROR RATE",
        "P50",
        "P95",
    ]
    rows = []
    for r in [*report["replicas"], report["total"]]:
        name = r["replica"] if r.get("reporting", True) else f"{r['replica']} (no heartbeat)"
        rows.append(
            [
                name,
                *(r[c] for c in COUNTERS),
                percent(r["errorRate"]),
                millis(r["p50Ms"]),
                millis(r["p95Ms"]),
            ]
        )
    note = "Counters since each replica's process start; TOTAL P50/P95 is the largest replica's."
    return table(headers, rows) + "\n\n" + note

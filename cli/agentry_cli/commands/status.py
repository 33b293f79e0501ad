"""`kubectl agent status NAME`: the operator's view of one Agent, from its status, and its
state store (backend, sessions, rows under old keys) as the replicas' heartbeats report it."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from .. import agents, heartbeats
from ..environment import Env
from ..formatting import fields, millis, percent, table
from ..timing import age_of, format_age


def run(env: Env, args: argparse.Namespace) -> int:
    agent = env.cluster.get_agent(env.namespace, args.name)
    summary = summarize(agent, env.clock.now())
    beats = heartbeats.for_agent(agent, env.cluster.list_leases(env.namespace), env.clock.now())
    summary["state"] = heartbeats.store_summary(agents.backend(agent), beats)
    env.show(summary, render_table)
    return 0


def summarize(agent: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The status fields a user asks for, flattened, with ages computed at `now`."""
    status = agents.status(agent)
    metrics = status.get("metrics") or {}
    checkpoint = dict(status.get("lastCheckpoint") or {})
    if checkpoint:
        age = age_of(checkpoint.get("time"), now)
        checkpoint["ageSeconds"] = None if age is None else round(age)
    requests = metrics.get("requests")
    errors = metrics.get("errors")
    error_rate = metrics.get("errorRate")
    if (
        error_rate is None
        and isinstance(requests, int)
        and requests > 0
        and isinstance(errors, int)
    ):
        error_rate = errors / requests
    return {
        "name": agents.name_of(agent),
        "namespace": agent.get("metadata", {}).get("namespace"),
        "phase": status.get("phase") or "Pending",
        "suspended": agents.is_suspended(agent),
        "replicas": agents.desired_replicas(agent),
        "readyReplicas": status.get("readyReplicas", 0),
        "statusCurrent": agents.status_is_current(agent),
        "generation": agent.get("metadata", {}).get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "conditions": [
            {
                "type": c.get("type"),
                "status": c.get("status"),
                "reason": c.get("reason"),
                "message": c.get("message"),
                "ageSeconds": _rounded(age_of(c.get("lastTransitionTime"), now)),
            }
            for c in status.get("conditions") or []
            if isinstance(c, dict)
        ],
        "health": dict(status.get("health") or {}),
        "metrics": {
            "requests": requests,
            "throttled": metrics.get("throttled"),
            "errors": errors,
            "degraded": metrics.get("degraded"),
            "errorRate": error_rate,
            "p95LatencyMs": metrics.get("p95LatencyMs"),
            "inputTokens": metrics.get("inputTokens"),
            "outputTokens": metrics.get("outputTokens"),
            "toolCalls": metrics.get("toolCalls"),
        },
        "lastCheckpoint": checkpoint or None,
        "endpoint": status.get("endpoint"),
    }


def _tokens_text(metrics: dict[str, Any]) -> str | None:
    """`1234 in, 56 out; 3 tool calls`, or None before any runtime reported them."""
    tokens_in, tokens_out = metrics.get("inputTokens"), metrics.get("outputTokens")
    if tokens_in is None and tokens_out is None:
        return None
    return f"{tokens_in or 0} in, {tokens_out or 0} out; {metrics.get('toolCalls') or 0} tool calls"


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def render_table(summary: dict[str, Any]) -> str:
    """The summary as `describe`-style fields and a conditions table."""
    metrics = summary["metrics"]
    checkpoint = summary["lastCheckpoint"]
    if checkpoint:
        age = checkpoint.get("ageSeconds")
        when = "unknown time" if age is None else f"{format_age(age)} ago"
        checkpoint_text = (
            f"{when}, generation {checkpoint.get('generation', '-')}, "
            f"{checkpoint.get('bytes', '-')} bytes, key {checkpoint.get('keyId', '-')}"
        )
    else:
        checkpoint_text = "none yet"
    phase = summary["phase"]
    if not summary["statusCurrent"]:
        phase += (
            f" (status is for generation {summary['observedGeneration'] or '-'}, "
            f"spec is at {summary['generation']})"
        )
    health = summary["health"]
    health_text = ", ".join(f"{k} {v}" for k, v in health.items()) if health else None
    pairs: list[tuple[str, object]] = [
        ("Agent", f"{summary['name']} (namespace {summary['namespace']})"),
        ("Phase", phase),
        (
            "Ready",
            f"{summary['readyReplicas']}/{summary['replicas']}"
            + (" (suspended)" if summary["suspended"] else ""),
        ),
        ("Requests", metrics["requests"]),
        ("Throttled", metrics["throttled"]),
        ("Errors", _errors_text(metrics)),
        ("Latency p95", millis(metrics["p95LatencyMs"])),
        ("Tokens", _tokens_text(metrics)),
        ("Health", health_text),
        ("State", _state_text(summary.get("state") or {})),
        ("Last checkpoint", checkpoint_text),
        ("Endpoint", summary["endpoint"]),
    ]
    text = fields(pairs)
    conditions = summary["conditions"]
    if conditions:
        rows = [
            [
                c["type"],
                c["status"],
                c["reason"],
                None if c["ageSeconds"] is None else format_age(c["ageSeconds"]),
                c["message"],
            ]
            for c in conditions
        ]
        text += "\n\nConditions:\n" + _indent(
            table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows)
        )
    else:
        text += "\n\nConditions: none yet (has the operator seen this Agent?)"
    return text


def _state_text(state: dict[str, Any]) -> str | None:
    """`postgres: 12 sessions, 0 rows under old keys`; pvc and configmap count memory."""
    backend = state.get("backend")
    if not backend:
        return None
    sessions = state.get("sessions")
    where = "in the database" if backend == "postgres" else "in memory"
    text = f"{backend}: {'-' if sessions is None else sessions} sessions {where}"
    if backend == "postgres":
        rows = state.get("rowsUnderOldKeys")
        text += f", {'-' if rows is None else rows} rows under old keys"
    return text


def _errors_text(metrics: dict[str, Any]) -> str | None:
    errors = metrics["errors"]
    if errors is None:
        return None
    rate = percent(metrics["errorRate"])
    return f"{errors} ({rate})" if rate else str(errors)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

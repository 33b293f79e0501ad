"""`start`, `stop` and `restart`: change what runs, then wait until it has happened.

start/stop flip `spec.suspend` and wait for the operator to report phase Running (or
Degraded: running, with the model failing) / Suspended for the new generation. restart
stamps the StatefulSet's pod template, as `kubectl rollout restart` does, and waits for
the rolling update to finish. `--no-wait` returns once the change is accepted.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import agents
from ..environment import Env
from ..errors import OperationFailed
from ..timing import rfc3339
from ..waiting import wait_for

POLL_SECONDS = 1.0
RUNNING_PHASES = ("Running", "Degraded")


def start(env: Env, args: argparse.Namespace) -> int:
    return _set_suspend(env, args, suspend=False)


def stop(env: Env, args: argparse.Namespace) -> int:
    return _set_suspend(env, args, suspend=True)


def _set_suspend(env: Env, args: argparse.Namespace, *, suspend: bool) -> int:
    verb, goal = ("stop", ("Suspended",)) if suspend else ("start", RUNNING_PHASES)
    agent = env.cluster.get_agent(env.namespace, args.name)
    changed = agents.is_suspended(agent) != suspend
    if changed:
        agent = env.cluster.patch_agent(env.namespace, args.name, {"spec": {"suspend": suspend}})
    if not args.no_wait:
        generation = agent.get("metadata", {}).get("generation")

        def reached() -> dict[str, Any] | None:
            current = env.cluster.get_agent(env.namespace, args.name)
            observed = agents.status(current).get("observedGeneration")
            if generation is not None and (not isinstance(observed, int) or observed < generation):
                return None
            phase = agents.status(current).get("phase")
            if phase == "Failed":
                raise OperationFailed(f"Agent {args.name} failed to {verb}: {_why(current)}")
            return current if phase in goal else None

        agent = wait_for(
            reached,
            clock=env.clock,
            timeout=args.timeout,
            interval=POLL_SECONDS,
            what=f"Agent {args.name} to reach phase {' or '.join(goal)}",
            progress=lambda: _progress(env.cluster.get_agent(env.namespace, args.name)),
        )
    result = _result(agent, verb, changed, waited=not args.no_wait)
    env.show(result, _render)
    return 0


def restart(env: Env, args: argparse.Namespace) -> int:
    agent = env.cluster.get_agent(env.namespace, args.name)
    if agents.is_suspended(agent):
        raise OperationFailed(
            f"Agent {args.name} is suspended: nothing to restart (use 'kubectl agent start')"
        )
    env.cluster.get_statefulset(env.namespace, args.name)  # a clear error when it is missing
    stamp = rfc3339(env.clock.now())
    patch = {
        "spec": {"template": {"metadata": {"annotations": {agents.RESTARTED_AT_ANNOTATION: stamp}}}}
    }
    sts = env.cluster.patch_statefulset(env.namespace, args.name, patch)
    if not args.no_wait:
        generation = sts.get("metadata", {}).get("generation")

        def rolled() -> dict[str, Any] | None:
            current = env.cluster.get_statefulset(env.namespace, args.name)
            return current if rollout_done(current, generation) else None

        sts = wait_for(
            rolled,
            clock=env.clock,
            timeout=args.timeout,
            interval=POLL_SECONDS,
            what=f"the rolling restart of Agent {args.name}",
            progress=lambda: _rollout_progress(
                env.cluster.get_statefulset(env.namespace, args.name)
            ),
        )
    sts_status = sts.get("status") or {}
    result = {
        "name": args.name,
        "namespace": env.namespace,
        "action": "restart",
        "restartedAt": stamp,
        "waited": not args.no_wait,
        "readyReplicas": sts_status.get("readyReplicas", 0),
        "replicas": (sts.get("spec") or {}).get("replicas", 0),
    }
    env.show(result, _render)
    return 0


def rollout_done(sts: dict[str, Any], generation: int | None) -> bool:
    """Whether a StatefulSet's rolling update of `generation` has finished, all ready."""
    status = sts.get("status") or {}
    replicas = (sts.get("spec") or {}).get("replicas", 1)
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return False
    return bool(
        status.get("updatedReplicas", 0) == replicas
        and status.get("readyReplicas", 0) == replicas
        and status.get("updateRevision") == status.get("currentRevision")
    )


def _rollout_progress(sts: dict[str, Any]) -> str:
    status = sts.get("status") or {}
    replicas = (sts.get("spec") or {}).get("replicas", 1)
    return (
        f"{status.get('updatedReplicas', 0)}/{replicas} updated, "
        f"{status.get('readyReplicas', 0)}/{replicas} ready"
    )


def _progress(agent: dict[str, Any]) -> str:
    status = agents.status(agent)
    text = (
        f"phase {status.get('phase') or 'unknown'}, "
        f"{status.get('readyReplicas', 0)}/{agents.desired_replicas(agent)} ready"
    )
    if not agents.status_is_current(agent):
        text += ", the operator has not yet seen the change"
    return text


def _why(agent: dict[str, Any]) -> str:
    ready = agents.condition(agent, "Ready") or {}
    return str(ready.get("message") or ready.get("reason") or "phase Failed")


def _result(agent: dict[str, Any], verb: str, changed: bool, *, waited: bool) -> dict[str, Any]:
    status = agents.status(agent)
    return {
        "name": agents.name_of(agent),
        "namespace": agent.get("metadata", {}).get("namespace"),
        "action": verb,
        "changed": changed,
        "waited": waited,
        "phase": status.get("phase"),
        "readyReplicas": status.get("readyReplicas", 0),
        "replicas": agents.desired_replicas(agent),
    }


def _render(result: dict[str, Any]) -> str:
    name, action = result["name"], result["action"]
    if action == "restart":
        if result["waited"]:
            return f"Agent {name} restarted: {result['readyReplicas']}/{result['replicas']} ready"
        return f"Agent {name}: rolling restart requested"
    past = {"start": "started", "stop": "stopped"}[action]
    if not result["waited"]:
        state = "requested" if result["changed"] else "already requested"
        return f"Agent {name}: {action} {state}"
    prefix = f"Agent {name} {past}" if result["changed"] else f"Agent {name} already {past}"
    return (
        f"{prefix}: phase {result['phase']}, {result['readyReplicas']}/{result['replicas']} ready"
    )

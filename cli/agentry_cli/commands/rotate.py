"""`kubectl agent rotate-key NAME`: add a key, make it active, wait until it is used.

On pvc and configmap, done means a checkpoint was written with the new key:
`status.lastCheckpoint.keyId` (the operator's view) or every running replica's heartbeat
`lastCheckpoint.keyId` (the runtime's view, which arrives first) equals the new id. On
postgres there are no checkpoints: done means every replica seals with the new key and
reports no row left under an older one (heartbeat `state.rowsUnderOldKeys` 0, after the
runtime's re-encryption pass). The old key stays in the Secret either way.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import agents, heartbeats, keyring
from ..environment import Env
from ..errors import NotFound
from ..waiting import wait_for

POLL_SECONDS = 2.0


def run(env: Env, args: argparse.Namespace) -> int:
    agent = env.cluster.get_agent(env.namespace, args.name)
    secret_name = agents.key_secret_name(agent)
    try:
        secret = env.cluster.get_secret(env.namespace, secret_name)
    except NotFound:
        raise NotFound(
            f'key Secret "{secret_name}" of Agent {args.name} not found in namespace '
            f'"{env.namespace}" (the operator creates it when it first reconciles the Agent)'
        ) from None
    previous = keyring.active_key_id(secret)
    new_id, patch = keyring.rotation_patch(secret)
    env.cluster.patch_secret(env.namespace, secret_name, patch)
    result: dict[str, Any] = {
        "name": args.name,
        "namespace": env.namespace,
        "secret": secret_name,
        "keyId": new_id,
        "previousKeyId": previous,
        "keyIds": [*keyring.key_ids(secret), new_id],
        "confirmedBy": None,
    }
    if args.no_wait:
        result["waited"] = False
    elif agents.desired_replicas(agent) == 0:
        result["waited"] = False
        env.note(f"Agent {args.name} runs no replicas: the key is used from its next checkpoint.")
    else:
        result["waited"] = True
        shared = agents.backend(agent) == "postgres"
        waiting_for = (
            f"every row of Agent {args.name} sealed with key {new_id}"
            if shared
            else f"a checkpoint of Agent {args.name} written with key {new_id}"
        )
        env.note(f"Key {new_id} is active; waiting for {waiting_for}...")
        check = rows_moved if shared else key_in_use
        result["confirmedBy"] = wait_for(
            lambda: check(env, args.name, new_id),
            clock=env.clock,
            timeout=args.timeout,
            interval=POLL_SECONDS,
            what=waiting_for,
        )
    env.show(result, _render)
    return 0


def key_in_use(env: Env, name: str, key_id: str) -> str | None:
    """'status' or 'heartbeats' when a checkpoint with `key_id` is reported, else None."""
    agent = env.cluster.get_agent(env.namespace, name)
    if (agents.status(agent).get("lastCheckpoint") or {}).get("keyId") == key_id:
        return "status"
    beats = heartbeats.for_agent(agent, env.cluster.list_leases(env.namespace), env.clock.now())
    if beats and all(b.found and b.last_checkpoint.get("keyId") == key_id for b in beats):
        return "heartbeats"
    return None


def rows_moved(env: Env, name: str, key_id: str) -> str | None:
    """'rows' when every replica seals with `key_id` and reports no row under another."""
    agent = env.cluster.get_agent(env.namespace, name)
    beats = heartbeats.for_agent(agent, env.cluster.list_leases(env.namespace), env.clock.now())
    if beats and all(
        b.found and b.store.get("activeKeyId") == key_id and b.store.get("rowsUnderOldKeys") == 0
        for b in beats
    ):
        return "rows"
    return None


CONFIRMATIONS = {
    "status": "A checkpoint written with key {key} is reported by the Agent status",
    "heartbeats": "A checkpoint written with key {key} is reported by the heartbeats of all "
    "replicas",
    "rows": "Every replica seals with key {key}, and no row is left under an older key (the "
    "old keys stay in the Secret; remove one only once nothing needs it)",
}


def _render(result: dict[str, Any]) -> str:
    text = (
        f"Agent {result['name']}: key {result['keyId']} added to Secret {result['secret']} "
        f"and made active (previous {result['previousKeyId'] or 'none'}; "
        f"kept keys: {', '.join(result['keyIds'])})"
    )
    if result["confirmedBy"]:
        text += "\n" + CONFIRMATIONS[result["confirmedBy"]].format(key=result["keyId"])
    return text

"""`kubectl agent keys export|import NAME`: back up and restore an Agent's key Secret.

The key Secret is the only way into the Agent's sealed memory: lose it and the state is
unreadable for good (issue 17). `export` writes it as a YAML manifest to keep somewhere
safe; `import` checks that a file is a key ring for this Agent and creates the Secret so
the operator adopts it (the labels a retained Secret carries), without a roll when the
key ids are the ones the pods already hold.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .. import agents, keyring
from ..environment import Env
from ..errors import OperationFailed, UsageError

WARNING = (
    "WARNING: this is the key ring of Agent {name}: anyone with it can read the Agent's "
    "memory, and without it no one can. Store it encrypted (a password manager, a sealed "
    "secret store), never in Git in the clear."
)
AGENT_LABEL = "agentry.dev/agent"
RETAINED_LABEL = "agentry.dev/retained"


def run(env: Env, args: argparse.Namespace) -> int:
    """Dispatch on the action (export | import)."""
    if args.action == "export":
        return export(env, args)
    return import_(env, args)


def export(env: Env, args: argparse.Namespace) -> int:
    agent = env.cluster.get_agent(env.namespace, args.name)
    secret = env.cluster.get_secret(env.namespace, agents.key_secret_name(agent))
    text = yaml.safe_dump(portable(secret), sort_keys=False)
    env.note(WARNING.format(name=args.name))
    if args.file in (None, "-"):
        env.emit(text.rstrip("\n"))
        return 0
    write_private(Path(args.file), text)
    env.note(f"Key Secret {secret['metadata']['name']} written to {args.file} (mode 0600)")
    return 0


def import_(env: Env, args: argparse.Namespace) -> int:
    if not args.file:
        raise UsageError("keys import needs -f FILE (a manifest written by keys export)")
    agent = env.cluster.get_agent(env.namespace, args.name)
    name = agents.key_secret_name(agent)
    document = read_document(args.file)
    problem = key_ring_problem(document, name)
    if problem:
        raise OperationFailed(f"{args.file} is not a key Secret for Agent {args.name}: {problem}")
    body = restorable(document, env.namespace, args.name, generated=name.endswith("-keys"))
    env.cluster.create_secret(env.namespace, body)
    ids = keyring.key_ids(body)
    env.emit(
        f"Key Secret {name} restored for Agent {args.name} (active {keyring.active_key_id(body)}; "
        f"keys {', '.join(ids)})"
    )
    return 0


def portable(secret: dict[str, Any]) -> dict[str, Any]:
    """The Secret without what the API server owns (uid, owner, resourceVersion, ...)."""
    meta = secret.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != RETAINED_LABEL}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("agentry")}
    kept: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if labels:
        kept["labels"] = labels
    if notes:
        kept["annotations"] = notes
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": kept,
        "type": secret.get("type") or "Opaque",
        "data": dict(secret.get("data") or {}),
    }


def key_ring_problem(document: Any, secret_name: str) -> str | None:
    """Why `document` is not a key Secret named `secret_name`, or None."""
    if not isinstance(document, dict) or document.get("kind") != "Secret":
        return "it is not a Secret manifest"
    found = (document.get("metadata") or {}).get("name")
    if found != secret_name:
        return f"it is Secret {found!r}, the Agent's key Secret is {secret_name!r}"
    ids = keyring.key_ids(document)
    if not ids:
        return "it holds no key.<id> entry"
    active = keyring.active_key_id(document)
    if active not in ids:
        return f"active-key-id {active!r} is not one of its keys ({', '.join(ids)})"
    for key_id in ids:
        if not keyring.is_key(document["data"][f"{keyring.KEY_PREFIX}{key_id}"]):
            return f"key.{key_id} is not base64 of 32 bytes"
    return None


def restorable(document: dict[str, Any], namespace: str, agent: str, *, generated: bool) -> Any:
    """The Secret to create; a generated one is marked as left behind by this Agent, the
    marks the operator adopts (a Secret without them would be someone else's)."""
    body = portable(document)
    body["metadata"]["namespace"] = namespace
    if generated:
        labels = body["metadata"].setdefault("labels", {})
        labels.update({AGENT_LABEL: agent, RETAINED_LABEL: "true"})
    return body


def read_document(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return yaml.safe_load(text)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise OperationFailed(f"{path} is not YAML: {error}") from None


def write_private(path: Path, text: str) -> None:
    """Create the file readable by its owner only, before any key byte is in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

"""Secrets stay secret: what the e2e suite's Secrets held, and where it must never show.

`HARVEST` (one per test process) gathers, before each e2e test's namespace is deleted, the
values of every Secret in it (keys, tokens, model API keys, connection URIs, webhook URLs)
and the text where the key Secret's data must never appear: Events, annotations, Agent
status, container env. The last test of the session (test_secrets_in_logs.py) scans every
log the cluster wrote for all of them; `forms` says which spellings count.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Shorter values ("true", "8080") would match by chance; a secret is longer.
MIN_LENGTH = 8
KINDS = "secrets,events,agents.agentry.dev,pods,statefulsets,configmaps,services"


def forms(value: bytes) -> set[bytes]:
    """The spellings of `value` a leak could take: as it is (when it is text), base64
    (standard and URL-safe, without padding), and hex. Base64 text is also decoded once,
    so a key stored as base64 in the Secret is looked for as raw bytes' spellings too."""
    found: set[bytes] = set()
    if len(value.strip()) < MIN_LENGTH:
        return found
    raws = [value]
    try:
        decoded = base64.b64decode(value, validate=True)
        if len(decoded) >= MIN_LENGTH:
            raws.append(decoded)
    except (binascii.Error, ValueError):
        pass
    for raw in raws:
        if raw.isascii() and raw.strip() and len(raw.strip()) >= MIN_LENGTH:
            found.add(raw.strip())
        found.add(base64.b64encode(raw).rstrip(b"="))
        found.add(base64.urlsafe_b64encode(raw).rstrip(b"="))
        found.add(raw.hex().encode())
    return {f for f in found if len(f) >= MIN_LENGTH}


@dataclass
class Harvest:
    """Secret values seen (label → spellings) and places the key data must not reach."""

    secrets: dict[str, set[bytes]] = field(default_factory=dict)
    keys: dict[str, set[bytes]] = field(default_factory=dict)
    exposed: dict[str, str] = field(default_factory=dict)

    def add_secret(self, label: str, value: bytes, *, key: bool = False) -> None:
        spellings = forms(value)
        # A tokens file: each line's token on its own (`[admin] client-id:TOKEN`).
        for line in value.splitlines() if b"\n" in value.strip() else []:
            spellings |= forms(line.rsplit(b":", 1)[-1].strip())
        if spellings:
            self.secrets[label] = spellings
            if key:
                self.keys[label] = spellings

    def take(self, namespace: str, objects: list[dict[str, Any]]) -> None:
        """Record one namespace's objects (`kubectl get KINDS -o json` items)."""
        places: list[Any] = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            name = f"{namespace}/{obj.get('kind')}/{meta.get('name')}"
            if obj.get("kind") == "Secret":
                is_keys = any(k.startswith("key.") for k in obj.get("data") or {})
                for key, encoded in (obj.get("data") or {}).items():
                    if key == "active-key-id":
                        continue  # a key's id, metadata (docs/security.md), not a key
                    value = base64.b64decode(encoded)
                    self.add_secret(f"{name}:{key}", value, key=is_keys and key.startswith("key."))
                continue
            places.append({name: {"annotations": meta.get("annotations") or {}}})
            if obj.get("kind") == "Event":
                places.append({name: obj.get("message"), "note": obj.get("note")})
            if obj.get("kind") == "Agent":
                places.append({name: obj.get("status")})
            places.extend({name: env} for env in _envs(obj))
        self.exposed[namespace] = json.dumps(places)

    def key_exposures(self) -> list[str]:
        """(key label, namespace) of every key spelling found in an exposed place."""
        return [
            f"{label} in {namespace}'s Events, annotations, status or env"
            for namespace, text in self.exposed.items()
            for label, spellings in self.keys.items()
            if any(s.decode() in text for s in spellings)
        ]


def _envs(obj: dict[str, Any]) -> Iterable[Any]:
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        yield container.get("env") or []


def harvest_namespace(cluster: Any, namespace: str) -> None:
    """Add one namespace to `HARVEST` (one kubectl call; skipped if the namespace is gone)."""
    out = cluster.kubectl("get", KINDS, "-n", namespace, "-o", "json", check=False)
    if out.returncode == 0:
        HARVEST.take(namespace, json.loads(out.stdout).get("items") or [])


def log_files(state_dir: Path) -> list[Path]:
    """Every log the local cluster wrote: control plane, node, pods (gone ones included)."""
    roots = [state_dir / "logs", state_dir / "node" / "logs"]
    roots.append(state_dir / "node" / "logs-of-deleted-pods")
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def scan(files: Iterable[Path], secrets: dict[str, set[bytes]]) -> list[str]:
    """`label in file` for each secret found in a file, in any of its spellings."""
    hits: list[str] = []
    for path in files:
        data = path.read_bytes()
        hits += [
            f"{label} in {path}"
            for label, spellings in secrets.items()
            if any(s in data for s in spellings)
        ]
    return hits


HARVEST = Harvest()

"""Decisions about an Agent's key ring that must never lock it out of its own memory.

The key Secret is the only way into an Agent's sealed state. This module answers, from
plain data, the questions the reconciler asks before it creates a key or rolls the pods:
which key ids does the state need, does a Secret still hold them, what id does a new key
get. `Reconciler` gathers the inputs (Secret, StatefulSet, status, state ConfigMaps);
everything here is pure and tested without a cluster.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentry_operator import constants as c

ACTIVE_KEY = "active-key-id"
KEY_PREFIX = "key."


@dataclass(frozen=True)
class Ring:
    """The ids in a key Secret (never the key bytes): the active one and all of them."""

    active: str | None
    ids: tuple[str, ...]

    def problem(self) -> str | None:
        """Why a runtime could not start with this ring, or None."""
        if not self.ids:
            return "it holds no key.<id> entry"
        if self.active is None:
            return "it has no active-key-id"
        if self.active not in self.ids:
            return f"active-key-id names {self.active!r}, which has no key.{self.active}"
        return None


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def ring_of(secret: Mapping[str, Any]) -> Ring:
    """The ring of a Secret as the API returns it (`data`, base64) or as written
    (`stringData`, which only an API without conversion, like kmock, hands back)."""
    plain = {key: _decode(str(value)) for key, value in (secret.get("data") or {}).items()}
    plain.update({k: str(v).strip() for k, v in (secret.get("stringData") or {}).items()})
    ids = tuple(sorted(k[len(KEY_PREFIX) :] for k in plain if k.startswith(KEY_PREFIX)))
    return Ring(plain.get(ACTIVE_KEY) or None, ids)


def new_key_id(random_bytes: Callable[[int], bytes]) -> str:
    """`k-<8 hex>`: unique, so an error naming a key id names exactly one key."""
    return f"k-{random_bytes(4).hex()}"


def ring_annotations(ring: Ring) -> dict[str, str]:
    """Pod template annotations that record which keys the pods were given."""
    return {c.ACTIVE_KEY_ANNOTATION: ring.active or "", c.KEY_IDS_ANNOTATION: ",".join(ring.ids)}


def given_ring(statefulset: Mapping[str, Any] | None) -> Ring | None:
    """The ring the running pods were given, from the live StatefulSet; None if unknown."""
    template = ((statefulset or {}).get("spec") or {}).get("template") or {}
    notes = (template.get("metadata") or {}).get("annotations") or {}
    if c.KEY_IDS_ANNOTATION not in notes:
        return None
    ids = tuple(i for i in notes[c.KEY_IDS_ANNOTATION].split(",") if i)
    return Ring(notes.get(c.ACTIVE_KEY_ANNOTATION) or None, ids)


def commit_key_ids(config_map: Mapping[str, Any]) -> set[str]:
    """Key ids named by a configmap-backend commit point (`data.commit`, readable JSON)."""
    text = (config_map.get("data") or {}).get("commit")
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return set()
    refs = [doc.get(slot) for slot in ("current", "previous")] if isinstance(doc, dict) else []
    return {str(ref["key_id"]) for ref in refs if isinstance(ref, dict) and ref.get("key_id")}


def checkpoint_key_ids(
    status: Mapping[str, Any] | None, config_maps: Iterable[Mapping[str, Any]] = ()
) -> set[str]:
    """Key ids that sealed checkpoints: the status' last checkpoint and commit points."""
    ids = {str(((status or {}).get("lastCheckpoint") or {}).get("keyId") or "")} - {""}
    for config_map in config_maps:
        ids |= commit_key_ids(config_map)
    return ids


def needed_key_ids(checkpoints: set[str], given: Ring | None) -> set[str]:
    """The ids the state needs: the checkpoints' keys and the running pods' active key
    (their journal since the checkpoint is sealed with it).

    A checkpoint id outside the ring the pods were given cannot be theirs (it is state
    that a fresh start set aside), so it does not count.
    """
    if given is None:
        return set(checkpoints)
    needed = checkpoints & set(given.ids)
    if given.active:
        needed.add(given.active)
    return needed


def row_key_ids(given: Ring | None, rows_under_old_keys: Iterable[int | None]) -> set[str]:
    """The ids the postgres backend's rows need. Rows move to the active key in the
    runtime's re-encryption pass; until every replica reports none left under another key
    (or while one has not reported), any id the pods were given may still seal a row."""
    if given is None:
        return set()
    reports = list(rows_under_old_keys)
    if reports and all(count == 0 for count in reports):
        return {given.active} if given.active else set()
    return set(given.ids)


def hold_reason(secret_name: str, ring: Ring, needed: set[str]) -> str | None:
    """Why pods must not roll onto this Secret (they would lose their state), or None."""
    problem = ring.problem()
    if problem:
        return f"roll held: Secret {secret_name} cannot be used: {problem}"
    lost = sorted(needed - set(ring.ids))
    if not lost:
        return None
    return (
        f"roll held: Secret {secret_name} no longer holds key id(s) {', '.join(lost)}, which "
        f"the Agent's state needs (it holds {', '.join(ring.ids)}); the running pods keep "
        "their keys. Put the key(s) back, e.g. `kubectl agent keys import`, to let it roll"
    )


def missing_message(agent: str, secret_name: str, needed: set[str], evidence: list[str]) -> str:
    """The KeysMissing message: the Secret, the key ids, and what to do."""
    ids = ", ".join(sorted(needed)) or "unknown (not recorded; see the old Secret)"
    return (
        f"key Secret {secret_name} is missing but the Agent has sealed state "
        f"({'; '.join(evidence)}) that needs key id(s) {ids}. No new key is generated and "
        f"the running pods are left alone: restore the Secret (`kubectl agent keys import "
        f"{agent} -f BACKUP`), or accept a fresh start with the annotation "
        f"{c.ACCEPT_NEW_KEYS_ANNOTATION}=true (the old state is set aside, not deleted)"
    )

"""Names and shapes of the configmap backend's objects (pure functions, no I/O).

    <replica>-state            commit point: data.commit (JSON, see `Commit`) and the
                               journal in binaryData, one key `j-<segment>-<index>` per entry
    <replica>-state-<a|b><i>   chunk i (0..7) of the sealed checkpoint in slot a or b,
                               binaryData.chunk

Names come from docs/architecture.md (the runtime's Role is scoped to exactly these).
A checkpoint is one envelope cut into chunks; the commit point names the slot, generation,
chunk count and SHA-256 of the whole envelope, so a half-written slot is never read.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

CHUNK_BYTES = 900 * 1024
MAX_CHUNKS = 8
SLOTS = ("a", "b")
_JOURNAL_KEY = re.compile(r"j-(\d{8,})-(\d{6,})")


@dataclass(frozen=True)
class SlotRef:
    """Where one sealed checkpoint lives."""

    slot: str
    generation: int
    chunks: int
    sha256: str
    bytes: int
    key_id: str
    time: str


@dataclass(frozen=True)
class Commit:
    """The content of `data.commit`: the current checkpoint and the one before it."""

    current: SlotRef | None
    previous: SlotRef | None = None
    quarantined: SlotRef | None = None

    def encode(self) -> str:
        """Readable JSON (kubectl shows it), without anything secret."""
        return json.dumps({"v": 1, **asdict(self)}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> Commit:
        """Parse `data.commit`; an absent value is a store without checkpoints.

        Anything but what `encode` writes raises `MalformedCommit`, which the store reports
        as unreadable state instead of failing later with a KeyError or TypeError.
        """
        if not text:
            return cls(None)
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise MalformedCommit("data.commit is not JSON") from None
        if not isinstance(doc, dict):
            raise MalformedCommit("data.commit is not a JSON object")
        current, previous, quarantined = (
            _slot_ref(doc.get(name), name) for name in ("current", "previous", "quarantined")
        )
        return cls(current, previous, quarantined)


class MalformedCommit(ValueError):
    """`data.commit` is not a commit point this code could have written."""


_SLOT_REF_TYPES = {
    "slot": str,
    "generation": int,
    "chunks": int,
    "sha256": str,
    "bytes": int,
    "key_id": str,
    "time": str,
}


def _slot_ref(value: Any, name: str) -> SlotRef | None:
    """One `SlotRef` of the commit point, every field present and of its type."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != set(_SLOT_REF_TYPES):
        raise MalformedCommit(f"data.commit {name} must have exactly {sorted(_SLOT_REF_TYPES)}")
    for field, kind in _SLOT_REF_TYPES.items():
        if not isinstance(value[field], kind) or isinstance(value[field], bool):
            raise MalformedCommit(f"data.commit {name}.{field} must be a {kind.__name__}")
    if value["slot"] not in SLOTS or not 1 <= value["chunks"] <= MAX_CHUNKS:
        raise MalformedCommit(f"data.commit {name} names no valid slot or chunk count")
    try:
        datetime.fromisoformat(value["time"])
    except ValueError:
        raise MalformedCommit(f"data.commit {name}.time is not an ISO 8601 time") from None
    return SlotRef(**value)


def commit_name(replica: str) -> str:
    return f"{replica}-state"


def chunk_name(replica: str, slot: str, index: int) -> str:
    return f"{replica}-state-{slot}{index}"


def other_slot(slot: str | None) -> str:
    return "b" if slot == "a" else "a"


def split_chunks(sealed: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    return [sealed[i : i + chunk_bytes] for i in range(0, len(sealed), chunk_bytes)] or [b""]


def journal_key(segment: int, index: int) -> str:
    return f"j-{segment:08d}-{index:06d}"


def parse_journal_key(key: str) -> tuple[int, int] | None:
    match = _JOURNAL_KEY.fullmatch(key)
    return (int(match.group(1)), int(match.group(2))) if match else None


MEMORY_COMPONENT = "memory"
"""``app.kubernetes.io/component`` of every state ConfigMap, and of nothing the operator
builds: its child watches select ``component!=memory``, so a checkpoint's writes (chunks
of up to 1 MiB) are not sent to the operator only to be dropped."""


def labels_for(agent: str) -> dict[str, str]:
    """The labels every Agentry object carries (docs/architecture.md), and the component
    that marks a state ConfigMap as the agent's memory rather than the operator's child."""
    return {
        "app.kubernetes.io/component": MEMORY_COMPONENT,
        "app.kubernetes.io/name": "agentry-agent",
        "app.kubernetes.io/instance": agent,
        "app.kubernetes.io/managed-by": "agentry-operator",
        "app.kubernetes.io/part-of": "agentry",
        "agentry.dev/agent": agent,
    }


def configmap(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    data: dict[str, str] | None = None,
    binary: dict[str, bytes] | None = None,
    resource_version: str | None = None,
) -> dict[str, Any]:
    """A ConfigMap body; binary values are base64-encoded as the API expects."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data:
        body["data"] = data
    if binary:
        body["binaryData"] = {k: base64.b64encode(v).decode("ascii") for k, v in binary.items()}
    return body


def binary_of(obj: dict[str, Any]) -> dict[str, bytes]:
    """Decoded binaryData of a ConfigMap read from the API."""
    raw = obj.get("binaryData") or {}
    return {k: base64.b64decode(v) for k, v in raw.items()}

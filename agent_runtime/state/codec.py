"""Plaintext encoding of checkpoints and journal entries (what goes inside an envelope).

JSON with a version field. Decoding validates the shape, because a record that
authenticates was still written by some version of this code and a wrong shape means a
bug or a format change, not a reason to crash with a KeyError deep in replay. Each record
also carries where it belongs (generation, segment and index) so a file renamed or a
record moved on disk is detected even though its envelope authenticates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_runtime.state.model import JournalEntry, MemoryState, Message

FORMAT_VERSION = 1

# Built once: ``json.dumps`` with options constructs a new encoder on every call, and a
# journal entry is encoded for every acknowledged turn.
_ENTRY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class MalformedRecord(ValueError):
    """An authenticated record whose content does not have the expected shape."""


@dataclass(frozen=True)
class CheckpointPayload:
    """A decoded checkpoint: its generation, when it was written, and the state."""

    generation: int
    time: datetime
    state: MemoryState


def encode_checkpoint(generation: int, time: datetime, state: MemoryState) -> bytes:
    """Serialize a snapshot; compact JSON, sessions in a stable order."""
    doc = {"v": FORMAT_VERSION, "generation": generation, "time": time.isoformat(), "state": state}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def decode_checkpoint(raw: bytes) -> CheckpointPayload:
    """Parse and validate a checkpoint plaintext."""
    doc = _load(raw)
    try:
        generation = doc["generation"]
        time = datetime.fromisoformat(doc["time"])
        state = doc["state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord(f"checkpoint lacks a valid {exc}") from None
    if not isinstance(generation, int) or not isinstance(state, dict):
        raise MalformedRecord("checkpoint generation or state has the wrong type")
    return CheckpointPayload(generation, time, {str(k): _messages(v) for k, v in state.items()})


def encode_entry(entry: JournalEntry, segment: int, index: int) -> bytes:
    """Serialize a journal entry with its position (segment and index within it)."""
    doc = {
        "v": FORMAT_VERSION,
        "seg": segment,
        "i": index,
        "op": entry.op,
        "session": entry.session,
        "messages": list(entry.messages),
    }
    return _ENTRY_ENCODER.encode(doc).encode()


def decode_entry(raw: bytes, segment: int, index: int) -> JournalEntry:
    """Parse a journal entry and check it sits where it was written."""
    doc = _load(raw)
    if doc.get("seg") != segment or doc.get("i") != index:
        raise MalformedRecord(
            f"journal record claims segment {doc.get('seg')} index {doc.get('i')}, "
            f"found at segment {segment} index {index}"
        )
    op, session = doc.get("op"), doc.get("session")
    if op not in ("append", "delete") or not isinstance(session, str):
        raise MalformedRecord("journal record has an invalid op or session")
    return JournalEntry(op=op, session=session, messages=tuple(_messages(doc.get("messages"))))


def _load(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRecord("record is not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise MalformedRecord("record has an unknown format version")
    return doc


def _messages(value: object) -> list[Message]:
    if not isinstance(value, list):
        raise MalformedRecord("messages must be a list")
    out: list[Message] = []
    for item in value:
        if not isinstance(item, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in item.items()
        ):
            raise MalformedRecord("a message must map strings to strings")
        out.append(dict(item))
    return out

"""Plaintext encoding of checkpoints and journal entries (what goes inside an envelope).

Records are sequences of length-prefixed parts (``framing``), a compact JSON header
first. A checkpoint (format 2) is its header, then for each session its owner and its
messages sealed again under a context that names the client and the session
(``sealing.BodySeal``). A journal entry (format 3, written since issue 13) is its header,
which names its owner, then for an ``append`` the turn's messages as plain JSON: the
envelope around the record authenticates the owner and the messages together, so a second
seal inside it would cost an encryption per turn and protect nothing more. A ``delete`` is
its header alone. Journal entries of format 2 (their messages sealed like a checkpoint's
bodies) and records of format 1 (one JSON document, before sessions had owners; its
sessions belong to the anonymous client) are still read.

Decoding validates the shape, because a record that authenticates was still written by
some version of this code and a wrong shape means a bug or a format change, not a reason
to crash with a KeyError deep in replay. Each record also carries where it belongs
(generation, segment and index) so a file renamed or a record moved on disk is detected
even though its envelope authenticates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from agent_runtime.state import framing
from agent_runtime.state.model import (
    ANONYMOUS_CLIENT,
    JournalEntry,
    MemoryState,
    Message,
    Position,
    SessionKey,
)
from agent_runtime.state.sealing import BodySeal

FORMAT_VERSION = 2  # checkpoints; journal entries read as such still open their bodies
JOURNAL_FORMAT_VERSION = 3  # journal entries written: messages as plain JSON in the one envelope
LEGACY_FORMAT_VERSION = 1
CHECKPOINT_BODY_KIND = "session"  # all of one session's messages, inside a checkpoint
TURN_BODY_KIND = "turn"  # the messages a format 2 journal entry adds (read only)

SLICE_BYTES = 256 * 1024
"""How much of a checkpoint the event loop encodes between turns of other work."""

MESSAGES_PER_CALL = 64
"""A checkpoint encodes a session's messages this many per encoder call: orjson holds the
GIL for a whole call, and a checkpoint is encoded on the event loop between requests (see
``checkpoint_parts_in_slices``), so one session of megabytes must not be one call."""


def dump(value: Any) -> bytes:
    """Compact UTF-8 JSON, the bytes ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False).encode()`` gives, by orjson (a turn is encoded on every request).
    A string that UTF-8 cannot hold (a lone surrogate) raises ``ValueError``, as that
    ``.encode()`` did, so a store fails that entry alone (``batching.seal_each``)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"not encodable as JSON: {exc}") from None


class MalformedRecord(ValueError):
    """An authenticated record whose content does not have the expected shape."""


@dataclass(frozen=True)
class CheckpointPayload:
    """A decoded checkpoint: its generation, when it was written, and the state."""

    generation: int
    time: datetime
    state: MemoryState


def encode_checkpoint(
    generation: int, time: datetime, state: MemoryState, bodies: BodySeal
) -> bytes:
    """Serialize a snapshot: a header, then each session's owner and sealed messages."""
    parts = [_checkpoint_header(generation, time)]
    for owner in sorted(state):
        parts.append(_session_part(owner, _encode_messages(state[owner]), bodies))
    return b"".join(parts)


async def checkpoint_parts_in_slices(
    generation: int, time: datetime, state: MemoryState, bodies: BodySeal
) -> list[bytes]:
    """``encode_checkpoint``'s parts (the header, then one per session), made on the event
    loop, which runs other work after each ``SLICE_BYTES`` of them; the caller joins them
    in a worker thread (``bytes.join`` releases the GIL for its copy). A session body
    larger than a slice is sealed in a worker thread (AES-GCM releases the GIL too).

    A worker thread doing this Python work would hold the GIL for switch intervals in
    turn with the loop: under load a checkpoint of 10-20 MB took 0.3-0.5 s instead of
    60 ms of CPU, and requests in that time waited up to 35 ms for the GIL. A slice delays
    the loop's other work by about a millisecond.
    """
    parts = [_checkpoint_header(generation, time)]
    since_yield = 0
    for owner in sorted(state):
        runs: list[bytes] = []
        for run in _message_runs(state[owner]):
            runs.append(run)
            since_yield += len(run)
            if since_yield >= SLICE_BYTES:
                since_yield = 0
                await asyncio.sleep(0)
        body = _json_list(runs)
        if len(body) > SLICE_BYTES:
            parts.append(await asyncio.to_thread(_session_part, owner, body, bodies))
        else:
            parts.append(_session_part(owner, body, bodies))
    return parts


def _checkpoint_header(generation: int, time: datetime) -> bytes:
    return _part({"v": FORMAT_VERSION, "generation": generation, "time": time.isoformat()})


def _session_part(owner: SessionKey, body: bytes, bodies: BodySeal) -> bytes:
    """A session in a checkpoint: its owner, then its messages sealed for that owner."""
    sealed = framing.frame(bodies.seal(body, CHECKPOINT_BODY_KIND, owner))
    return _part({"client": owner.client, "session": owner.session}) + sealed


def _message_runs(messages: list[Message]) -> Iterator[bytes]:
    """The JSON of `messages` without its brackets, ``MESSAGES_PER_CALL`` messages per
    encoder call: orjson holds the GIL for a whole call, so a session of megabytes must
    not be one call."""
    step = MESSAGES_PER_CALL
    for i in range(0, len(messages), step):
        yield dump(messages[i : i + step])[1:-1]


def _encode_messages(messages: list[Message]) -> bytes:
    """The JSON list of `messages`, in ``_message_runs`` (the same bytes as one call)."""
    return _json_list(_message_runs(messages))


def _json_list(runs: Iterable[bytes]) -> bytes:
    """A JSON list made of ``_message_runs``."""
    return b"[" + b",".join(runs) + b"]"


def decode_checkpoint(raw: bytes, bodies: BodySeal) -> CheckpointPayload:
    """Parse and validate a checkpoint plaintext; a body that fails to open raises
    DecryptionError like a record that fails to open."""
    if _is_legacy(raw):
        return _decode_legacy_checkpoint(raw)
    header, rest = _header_and_parts(raw, FORMAT_VERSION)
    try:
        generation = header["generation"]
        time = datetime.fromisoformat(header["time"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord(f"checkpoint lacks a valid {exc}") from None
    if not isinstance(generation, int) or len(rest) % 2:
        raise MalformedRecord("checkpoint generation or session list has the wrong shape")
    state: MemoryState = {}
    for index in range(0, len(rest), 2):
        owner = _owner(_json_object(rest[index]))
        body = bodies.open(rest[index + 1], CHECKPOINT_BODY_KIND, owner)
        state[owner] = _messages(_json(body))
    return CheckpointPayload(generation, time, state)


def encode_entry(
    entry: JournalEntry,
    segment: int,
    index: int,
    *,
    after: Position | None = None,
) -> bytes:
    """Serialize a journal entry (format 3) with its position (segment and index in it).

    The messages follow the header as plain JSON: the one envelope the store seals the
    record into binds them to the owner the header names (one encryption per turn).

    The first record of a segment also names `after`, the position the store had durably
    reached when the segment began: replay checks that it reached that far too, so a
    journal segment deleted from between others is noticed (records within a segment are
    already bound to their index).
    """
    header: dict[str, Any] = {
        "v": JOURNAL_FORMAT_VERSION,
        "seg": segment,
        "i": index,
        "op": entry.op,
        "client": entry.client,
        "session": entry.session,
    }
    if after is not None:
        header["after"] = list(after)
    if entry.op == "delete":
        return _part(header)
    return _part(header) + framing.frame(dump(entry.messages))


def decode_entry(raw: bytes, segment: int, index: int, bodies: BodySeal) -> JournalEntry:
    """Parse a journal entry of any format, check it sits where it was written; `bodies`
    opens the sealed messages of format 2 entries."""
    if _is_legacy(raw):
        doc = _legacy_document(raw)
        _check_position(doc, segment, index)
        messages = _messages(doc.get("messages"))
        return _entry(doc.get("op"), ANONYMOUS_CLIENT, doc.get("session"), messages)
    header, rest = _header_and_parts(raw, JOURNAL_FORMAT_VERSION, FORMAT_VERSION)
    _check_position(header, segment, index)
    owner = _owner(header)
    op = header.get("op")
    if op == "delete" and not rest:
        return _entry(op, owner.client, owner.session, [])
    if op != "append" or len(rest) != 1:
        raise MalformedRecord("journal record has an invalid op or body")
    body = rest[0]
    if header["v"] == FORMAT_VERSION:
        body = bodies.open(body, TURN_BODY_KIND, owner)
    return _entry(op, owner.client, owner.session, _messages(_json(body)))


def decode_link(raw: bytes) -> Position | None:
    """The `after` position a segment's first record names; None for records without
    one (format 1, or written before the link existed)."""
    if _is_legacy(raw):
        return None
    header, _ = _header_and_parts(raw, JOURNAL_FORMAT_VERSION, FORMAT_VERSION)
    after = header.get("after")
    if after is None:
        return None
    if (
        not isinstance(after, list)
        or len(after) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in after)
    ):
        raise MalformedRecord("journal record has an invalid after position")
    return Position(after[0], after[1])


# -- parts ---------------------------------------------------------------------------------


def _part(doc: dict[str, Any]) -> bytes:
    return framing.frame(dump(doc))


def _is_legacy(raw: bytes) -> bool:
    """Format 1 was one JSON object; formats 2 and 3 start with a length prefix, never
    ``{``."""
    return raw[:1] == b"{"


def _header_and_parts(raw: bytes, *versions: int) -> tuple[dict[str, Any], list[bytes]]:
    """The JSON header and the other parts of a record of one of `versions`."""
    parts, torn = framing.split(raw)
    if torn or not parts:
        raise MalformedRecord("record parts are truncated")
    header = _json_object(parts[0])
    if header.get("v") not in versions:
        raise MalformedRecord("record has an unknown format version")
    return header, parts[1:]


def _check_position(doc: dict[str, Any], segment: int, index: int) -> None:
    if doc.get("seg") != segment or doc.get("i") != index:
        raise MalformedRecord(
            f"journal record claims segment {doc.get('seg')} index {doc.get('i')}, "
            f"found at segment {segment} index {index}"
        )


def _owner(doc: dict[str, Any]) -> SessionKey:
    client, session = doc.get("client"), doc.get("session")
    if not isinstance(client, str) or not isinstance(session, str) or not client:
        raise MalformedRecord("record has an invalid client or session")
    return SessionKey(client, session)


def _entry(op: object, client: str, session: object, messages: list[Message]) -> JournalEntry:
    if op not in ("append", "delete") or not isinstance(session, str):
        raise MalformedRecord("journal record has an invalid op or session")
    return JournalEntry(op=op, session=session, messages=tuple(messages), client=client)


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRecord("record is not JSON") from None


def _json_object(raw: bytes) -> dict[str, Any]:
    doc = _json(raw)
    if not isinstance(doc, dict):
        raise MalformedRecord("record part is not a JSON object")
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


# -- format 1 (read only) --------------------------------------------------------------------


def _legacy_document(raw: bytes) -> dict[str, Any]:
    doc = _json_object(raw)
    if doc.get("v") != LEGACY_FORMAT_VERSION:
        raise MalformedRecord("record has an unknown format version")
    return doc


def _decode_legacy_checkpoint(raw: bytes) -> CheckpointPayload:
    """A format 1 checkpoint: every session in it belongs to the anonymous client."""
    doc = _legacy_document(raw)
    try:
        generation = doc["generation"]
        time = datetime.fromisoformat(doc["time"])
        state = doc["state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord(f"checkpoint lacks a valid {exc}") from None
    if not isinstance(generation, int) or not isinstance(state, dict):
        raise MalformedRecord("checkpoint generation or state has the wrong type")
    sessions = {SessionKey(ANONYMOUS_CLIENT, str(k)): _messages(v) for k, v in state.items()}
    return CheckpointPayload(generation, time, sessions)

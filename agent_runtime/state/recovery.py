"""The recovery rules, shared by every backend: what to restore and when to refuse.

A backend reads its raw sealed records (checkpoints newest first, journal segments in
order) and hands them here; this module decides, without touching storage:

- the newest checkpoint that authenticates is restored; newer ones that fail are
  reported as warnings and listed for quarantine (never overwritten or deleted);
- journal segments numbered at or above the restored generation are replayed in order,
  so a fallback to an older checkpoint still replays everything acknowledged since;
- replay stops at the first record that fails (a consistent prefix beats a state with a
  hole in it); the rest is listed for quarantine; a torn last record is ignored;
- the first record of each segment names the position the store had reached when the
  segment began; replay that did not reach it reports the records as missing;
- the position the restored state reaches (newest segment replayed and its record
  count) is reported, for the runtime to compare with the mark kept outside the store;
- a record under a key id the ring does not have, or a failure under a key id that did
  not authenticate anything else, means a wrong or missing key rather than corruption:
  `StateUnreadable`, and the backend must leave every stored byte as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent_runtime.crypto import DecryptionError, KeyRing, RecordContext
from agent_runtime.state import codec
from agent_runtime.state.errors import StateUnreadable
from agent_runtime.state.model import (
    NO_STATE,
    CheckpointInfo,
    MemoryState,
    Position,
    Restored,
    apply_entry,
)
from agent_runtime.state.sealing import BodySeal

CHECKPOINT_KIND = "checkpoint"
JOURNAL_KIND = "journal"


@dataclass(frozen=True)
class StoredCheckpoint:
    """One checkpoint as stored: its generation, a name for messages, the sealed bytes.

    A store that reads from disk passes `reader` instead of `data`: recovery reads
    checkpoints newest first and stops at the first that opens, so older generations
    are never loaded into memory (a restore must not need several times the state's
    size, or a large state crash-loops on out-of-memory at every restart).
    """

    generation: int
    name: str
    data: bytes = b""
    reader: Callable[[], bytes] | None = None

    def read(self) -> bytes:
        return self.data if self.reader is None else self.reader()


@dataclass(frozen=True)
class StoredSegment:
    """One journal segment: the sealed records in order, and a torn tail's size if any."""

    number: int
    name: str
    records: Sequence[bytes]
    torn_tail_bytes: int = 0


@dataclass
class Recovery:
    """The decision: what to restore and which stored pieces the backend should set aside."""

    restored: Restored
    corrupt_checkpoints: list[str] = field(default_factory=list)
    # segment number -> records to keep (a prefix); segments from `cut_segment` on, other
    # than that prefix, hold records that failed and must be quarantined, not replayed.
    valid_records: dict[int, int] = field(default_factory=dict)
    cut_segment: int | None = None
    highest_number: int = -1


@dataclass
class _Failure:
    name: str
    key_id: str | None
    reason: str


def recover(
    keyring: KeyRing,
    base: RecordContext,
    checkpoints: Sequence[StoredCheckpoint],
    segments: Sequence[StoredSegment],
) -> Recovery:
    """Apply the recovery rules; raise StateUnreadable when the key ring is the problem."""
    started = time.perf_counter()
    checkpoint_context = base.with_kind(CHECKPOINT_KIND)
    journal_context = base.with_kind(JOURNAL_KIND)
    bodies = BodySeal(keyring, base)
    proven: set[str] = set()
    failures: list[_Failure] = []
    warnings: list[str] = []
    corrupt: list[str] = []

    chosen: StoredCheckpoint | None = None
    chosen_bytes, chosen_key_id = 0, ""
    payload: codec.CheckpointPayload | None = None
    for stored in sorted(checkpoints, key=lambda c: c.generation, reverse=True):
        data = stored.read()
        try:
            payload = _open_checkpoint(keyring, checkpoint_context, bodies, stored, data)
        except DecryptionError as exc:
            if exc.reason == "unknown-key":
                raise StateUnreadable(f"{stored.name}: {exc}") from None
            failures.append(_Failure(stored.name, exc.key_id, exc.reason))
            corrupt.append(stored.name)
            continue
        except codec.MalformedRecord as exc:
            failures.append(_Failure(stored.name, KeyRing.key_id_of(data), str(exc)))
            corrupt.append(stored.name)
            continue
        chosen, chosen_bytes, chosen_key_id = stored, len(data), KeyRing.key_id_of(data)
        proven.add(chosen_key_id)
        break
    if checkpoints and chosen is None:
        raise StateUnreadable(
            f"none of {len(checkpoints)} checkpoints can be read: the newest "
            f"({failures[0].name}) needs key id {failures[0].key_id!r} and failed "
            f"{failures[0].reason}; the key ring has {list(keyring.key_ids)}"
        )
    for failure in failures:
        restored_from = f"restored generation {chosen.generation}" if chosen else "no checkpoint"
        warnings.append(f"{failure.name} failed {failure.reason}; {restored_from}")

    state: MemoryState = payload.state if payload else {}
    first = chosen.generation if chosen else -1
    replayed = deletions = 0
    position = Position(first, 0) if chosen else NO_STATE
    valid: dict[int, int] = {}
    cut: int | None = None
    missing: str | None = None
    for segment in sorted(segments, key=lambda s: s.number):
        if segment.number < first:
            continue
        if cut is not None:
            valid[segment.number] = 0
            continue
        kept = 0
        for index, record in enumerate(segment.records):
            try:
                raw = keyring.open(record, journal_context)
                entry = codec.decode_entry(raw, segment.number, index, bodies)
                if index == 0 and missing is None:
                    missing = _missing(codec.decode_link(raw), position, first, segment.name)
            except DecryptionError as exc:
                if exc.reason == "unknown-key":
                    raise StateUnreadable(f"{segment.name} record {index}: {exc}") from None
                failures.append(_Failure(f"{segment.name} record {index}", exc.key_id, exc.reason))
                cut = segment.number
                break
            except codec.MalformedRecord as exc:
                key_id = KeyRing.key_id_of(record)
                failures.append(_Failure(f"{segment.name} record {index}", key_id, str(exc)))
                cut = segment.number
                break
            proven.add(KeyRing.key_id_of(record))
            apply_entry(state, entry)
            if entry.op == "delete":
                deletions += 1
            kept += 1
        valid[segment.number] = kept
        position = max(position, Position(segment.number, kept))
        if cut is not None:
            warnings.append(
                f"{segment.name} record {kept} failed to open; replay stopped there and "
                "later journal records were set aside"
            )
        elif segment.torn_tail_bytes:
            warnings.append(
                f"{segment.name} ends with a torn record ({segment.torn_tail_bytes} bytes, "
                "never acknowledged); ignored"
            )
        replayed += kept

    for failure in failures:
        if failure.key_id is not None and failure.key_id not in proven:
            raise StateUnreadable(
                f"{failure.name} sealed with key id {failure.key_id!r} failed {failure.reason} "
                "and no other record under that key opens: the key is wrong "
                f"(the key ring has {list(keyring.key_ids)})"
            )

    info = None
    if chosen is not None and payload is not None:
        info = CheckpointInfo(
            generation=chosen.generation,
            time=payload.time,
            bytes=chosen_bytes,
            key_id=chosen_key_id,
            duration_seconds=time.perf_counter() - started,
        )
    numbers = [c.generation for c in checkpoints] + [s.number for s in segments]
    return Recovery(
        restored=Restored(
            state,
            info,
            replayed,
            warnings,
            deletions_replayed=deletions,
            position=position,
            missing=missing,
        ),
        corrupt_checkpoints=corrupt,
        valid_records=valid,
        cut_segment=cut,
        highest_number=max(numbers, default=-1),
    )


def _open_checkpoint(
    keyring: KeyRing,
    context: RecordContext,
    bodies: BodySeal,
    stored: StoredCheckpoint,
    data: bytes,
) -> codec.CheckpointPayload:
    payload = codec.decode_checkpoint(keyring.open(data, context), bodies)
    if payload.generation != stored.generation:
        raise codec.MalformedRecord(
            f"holds generation {payload.generation}, stored as {stored.generation}"
        )
    return payload


def _missing(link: Position | None, reached: Position, first: int, name: str) -> str | None:
    """Why records before this segment are missing, or None: its first record names the
    position the store had reached when it began, and replay (from the checkpoint of
    generation `first` on) must have reached it too."""
    if link is None or link.segment < first or link <= reached:
        return None
    return (
        f"{name} follows {link.describe()}, but replay reached only {reached.describe()}: "
        "journal records or segments before it were removed"
    )

"""The `pvc` backend: checkpoints and a journal as files in one directory.

Layout (all sealed, see docs/state-and-encryption.md):

    checkpoint-<gen:08d>.agry   one envelope: the whole state at generation <gen>
    journal-<num:08d>.agry      length-prefixed envelopes appended after checkpoint <num>
    *.corrupt[.<n>]             set aside by recovery; never read, never deleted
    .checkpoint-*.tmp           an interrupted checkpoint write; removed on load

Checkpoints are atomic (temp file, fsync, rename, fsync directory) and the newest
`generations` of them are kept, with every journal segment from the oldest kept
generation on, so falling back to an older checkpoint still replays everything
acknowledged since. Appends are fsynced before `append()` returns; concurrent appends are
written and fsynced together (group commit). All file I/O runs in worker threads: the
journal's on one thread of its own (``writer.py``), the rest in the default executor.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.state import codec, framing
from agent_runtime.state.batching import GroupCommit, Pending, seal_each
from agent_runtime.state.errors import StateError, StateUnreadable
from agent_runtime.state.lifecycle import WriteGate
from agent_runtime.state.model import (
    CheckpointInfo,
    JournalEntry,
    MemoryState,
    Position,
    Restored,
)
from agent_runtime.state.recovery import (
    CHECKPOINT_KIND,
    JOURNAL_KIND,
    Recovery,
    StoredCheckpoint,
    StoredSegment,
    recover,
)
from agent_runtime.state.sealing import SealedStore
from agent_runtime.state.writer import WriterThread

_NAME = re.compile(r"(checkpoint|journal)-(\d{8,})\.agry(\.corrupt(\.\d+)?)?")
_TEMP_PREFIX = ".checkpoint-"
FLUSH_CHUNK_BYTES = 1024 * 1024  # a checkpoint is written and flushed this much at a time
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})  # answered 507, shown by readiness


class PvcStore(SealedStore):
    """Encrypted state in a directory on a persistent volume."""

    def __init__(
        self,
        directory: Path,
        keyring: KeyRing,
        context_base: RecordContext,
        generations: int = 3,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dir = directory
        super().__init__(keyring, context_base)
        self._generations = max(1, generations)
        self._clock = clock
        self._gate = WriteGate(self.describe())
        self._segment = 0
        self._batches = GroupCommit(self.describe(), self._write)
        self._writer = WriterThread("agentry-journal")  # writes and fsyncs each batch
        self._checkpoint_lock = asyncio.Lock()
        # Touched only by the journal flusher and its worker thread (one batch at a time).
        self._open_segment: tuple[int, int] | None = None  # (number, fd)
        self._record_counts: dict[int, int] = {}

    def describe(self) -> str:
        return f"pvc:{self._dir}"

    # -- load -------------------------------------------------------------------------

    async def load(self) -> Restored:
        self._gate.begin_load()
        try:
            recovery = await asyncio.to_thread(self._load_sync)
        except StateUnreadable as exc:
            self._gate.refuse(exc)
            raise
        except OSError as exc:
            raise StateError(f"{self.describe()}: cannot read state: {exc}") from exc
        self._next_number = recovery.highest_number + 1
        self._segment = self._take_number()
        self._erasure_replayed(recovery.restored)
        self.position = recovery.restored.position
        self._gate.loaded = True
        return recovery.restored

    def _load_sync(self) -> Recovery:
        self._dir.mkdir(parents=True, exist_ok=True)
        checkpoints: list[StoredCheckpoint] = []
        segments: list[StoredSegment] = []
        highest = -1
        for path in self._dir.iterdir():
            match = _NAME.fullmatch(path.name)
            if match is None:
                continue
            number = int(match.group(2))
            highest = max(highest, number)
            if match.group(3):
                continue  # quarantined: counted for numbering, never read
            if match.group(1) == "checkpoint":
                checkpoints.append(StoredCheckpoint(number, path.name, reader=path.read_bytes))
            else:
                records, torn = framing.split(path.read_bytes())
                segments.append(StoredSegment(number, path.name, records, torn))
        # Decides, or raises StateUnreadable before anything below touches the directory.
        recovery = recover(self._keyring, self._base, checkpoints, segments)
        recovery.highest_number = max(recovery.highest_number, highest)
        self._repair(recovery, segments)
        return recovery

    def _repair(self, recovery: Recovery, segments: list[StoredSegment]) -> None:
        """Set aside what failed, cut torn tails, drop interrupted temp files."""
        changed = False
        for name in recovery.corrupt_checkpoints:
            _quarantine(self._dir / name)
            changed = True
        for segment in segments:
            kept = recovery.valid_records.get(segment.number)
            if kept is None:
                continue  # older than the restored checkpoint: retained, untouched
            path = self._dir / segment.name
            valid = b"".join(framing.frame(r) for r in segment.records[:kept])
            if kept < len(segment.records):
                _quarantine(path)  # the whole segment, as it was, for inspection
                if valid:
                    _write_atomically(path, valid, self._dir)
                changed = True
            elif segment.torn_tail_bytes:
                with open(path, "r+b") as handle:
                    handle.truncate(len(valid))
                    os.fsync(handle.fileno())
                changed = True
            self._record_counts[segment.number] = kept
        for path in self._dir.glob(_TEMP_PREFIX + "*"):
            path.unlink()
            changed = True
        if changed:
            _fsync_directory(self._dir)

    # -- journal ----------------------------------------------------------------------

    async def append(self, entry: JournalEntry) -> None:
        self._gate.check_writable()
        self._note_erasure(entry)
        await self._batches.append(self._segment, entry)

    async def _write(self, batch: list[Pending]) -> None:
        # Encoding and sealing hold the GIL, so they run here on the loop (batches are
        # written one at a time, so the record counts cannot move underneath); the worker
        # thread only writes and fsyncs, which release it. A worker thread doing Python
        # work would make the loop and the thread trade the GIL on every batch.
        frames: dict[int, list[bytes]] = {}
        for sealed in seal_each(batch, self._stored_records, self._frame_entry):
            frames.setdefault(sealed.pending.segment, []).append(sealed.record)
        writes = [  # (segment, frames, record count after)
            (number, b"".join(records), self._stored_records(number) + len(records))
            for number, records in sorted(frames.items())
        ]
        if not writes:
            return
        try:
            await self._writer.run(partial(self._write_segments, writes))
        except OSError as exc:
            raise self._write_failure(exc, "the journal") from exc
        self._gate.full = None
        for number, _, count in writes:
            self._advance(Position(number, count))

    def _stored_records(self, segment: int) -> int:
        return self._record_counts.get(segment, 0)

    def _frame_entry(self, item: Pending, index: int) -> bytes:
        after = self.position if index == 0 else None
        plaintext = codec.encode_entry(item.entry, item.segment, index, after=after)
        return framing.frame(self._seal(plaintext, JOURNAL_KIND))

    def _write_segments(self, writes: list[tuple[int, bytes, int]]) -> None:
        for number, frames, count in writes:
            fd = self._segment_fd(number)
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                _write_all(fd, frames)
                os.fsync(fd)
            except OSError:
                try:  # leave no partial record for the next batch to follow
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                except OSError as exc:
                    self._gate.failure = f"journal {number} could not be repaired: {exc}"
                raise
            self._record_counts[number] = count

    def _segment_fd(self, number: int) -> int:
        if self._open_segment is not None:
            if self._open_segment[0] == number:
                return self._open_segment[1]
            os.close(self._open_segment[1])
            self._open_segment = None
        path = self._dir / f"journal-{number:08d}.agry"
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if created:
            _fsync_directory(self._dir)  # the new name must survive a crash too
        self._open_segment = (number, fd)
        return fd

    # -- checkpoints ------------------------------------------------------------------

    async def checkpoint(self, state: MemoryState) -> CheckpointInfo:
        self._gate.check_writable()
        # Synchronously, before any await: later appends belong after this checkpoint.
        generation = self._take_number()
        self._segment = generation
        erase = self._take_erasure()
        try:
            return await self._checkpoint(generation, state, erase)
        except BaseException:
            self._erasure_not_done(erase)
            raise

    async def _checkpoint(self, generation: int, state: MemoryState, erase: bool) -> CheckpointInfo:
        now = self._clock()
        async with self._checkpoint_lock:
            self._gate.check_writable()
            started = time.perf_counter()
            parts = await codec.checkpoint_parts_in_slices(generation, now, state, self._bodies)
            try:
                size = await asyncio.to_thread(self._write_checkpoint, generation, parts, erase)
            except OSError as exc:
                raise self._write_failure(exc, "a checkpoint") from exc
            self._gate.full = None
            self._advance(Position(generation, 0))
            return CheckpointInfo(
                generation=generation,
                time=now,
                bytes=size,
                key_id=self._keyring.active_key_id,
                duration_seconds=time.perf_counter() - started,
            )

    def _write_checkpoint(self, generation: int, parts: list[bytes], erase: bool) -> int:
        """In a worker thread: joining, sealing and writing megabytes release the GIL."""
        sealed = self._seal(b"".join(parts), CHECKPOINT_KIND)
        final = self._dir / f"checkpoint-{generation:08d}.agry"
        _write_atomically(final, sealed, self._dir, temp_name=f"{_TEMP_PREFIX}{generation:08d}.tmp")
        self._trim(erase)
        return len(sealed)

    def _write_failure(self, exc: OSError, what: str) -> StateError:
        """A full disk or quota is StateFull (507, readiness fails); anything else not."""
        if exc.errno in _NO_SPACE:
            return self._gate.out_of_space(f"no space left for {what} ({exc.strerror})")
        return StateError(f"{self.describe()}: writing {what} failed: {exc}")

    def _trim(self, erase: bool) -> None:
        """Keep the newest generations and the journal segments they need.

        After an erasure only the checkpoint just written (durable: fsynced and renamed)
        and the journal after it stay, and files set aside as corrupt go too: any older
        file may hold the deleted session. Recovery loses its fallback generations until
        the next checkpoints rebuild them; erasure comes first.
        """
        generations = sorted(
            int(m.group(2))
            for p in self._dir.iterdir()
            if (m := _NAME.fullmatch(p.name)) and m.group(1) == "checkpoint" and not m.group(3)
        )
        kept = generations[-(1 if erase else self._generations) :]
        removed = False
        for path in self._dir.iterdir():
            match = _NAME.fullmatch(path.name)
            if match is None or (match.group(3) and not erase):
                continue
            number = int(match.group(2))
            if number < kept[0]:
                path.unlink()
                removed = True
        if removed:
            _fsync_directory(self._dir)

    # -- the rest ---------------------------------------------------------------------

    async def probe(self) -> str | None:
        warning = self._gate.check_ready()
        writable = await asyncio.to_thread(os.access, self._dir, os.W_OK)
        if not writable:
            raise StateError(f"{self._dir} is not writable")
        return warning

    async def close(self) -> None:
        await self._batches.drain()
        async with self._checkpoint_lock:
            self._gate.closed = True
            if self._open_segment is not None:
                os.close(self._open_segment[1])
                self._open_segment = None
        self._writer.close()  # idle: every batch was drained above


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_flushed(fd: int, data: bytes) -> None:
    """Write `data` and flush it to the device ``FLUSH_CHUNK_BYTES`` at a time: the
    journal's fsyncs, each acknowledging turns, then wait behind a megabyte at most,
    not behind a whole checkpoint's megabytes (measured: 9-18 ms behind 13 MB, under 6 ms
    with 1 MiB chunks)."""
    view = memoryview(data)
    for start in range(0, len(view), FLUSH_CHUNK_BYTES):
        _write_all(fd, view[start : start + FLUSH_CHUNK_BYTES])
        os.fdatasync(fd)


def _write_atomically(
    path: Path, data: bytes, directory: Path, temp_name: str | None = None
) -> None:
    temp = directory / (temp_name or f"{_TEMP_PREFIX}{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_flushed(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temp, path)
    _fsync_directory(directory)


def _quarantine(path: Path) -> Path:
    """Rename a file that failed to open so nothing reads, overwrites or trims it."""
    target = path.with_name(path.name + ".corrupt")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt.{counter}")
        counter += 1
    os.rename(path, target)
    return target


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The `configmap` backend: state in ConfigMaps through the Kubernetes API.

For agents without a volume. A checkpoint is one sealed envelope cut into chunks of
~900 KiB (ConfigMaps hold 1 MiB) written to the slot (a or b) that the commit point does
not reference; then the commit point `<replica>-state` is replaced under a
`resourceVersion` guard to name the new slot, generation, chunk count and SHA-256. A crash
between the two leaves the old commit valid. The journal lives in the commit point's
binaryData, one key per entry, so an acknowledged append is in the same object that
names the checkpoint it follows.

The journal must stay small enough for one object, so the store keeps its own copy of
the state (the last checkpoint plus the entries since) and, when the journal passes its
budget, checkpoints that copy by itself before appending (compaction). Concurrent appends
share one update of the commit point.

Limits: eight chunks per slot (about 7 MiB sealed); beyond that checkpoints fail with
StateFull (507, readiness fails) naming the pvc backend, from 80% of it readiness warns,
and while full only deletes are journaled until a checkpoint fits again. With two slots
the store can fall back one generation; the next checkpoint after such a fallback reuses
the failed slot (the other one holds the only good copy), so the failed chunks are kept
only until then, and the commit point records them under `quarantined`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.kubeapi import REQUEST_TIMEOUT_SECONDS, KubeClient
from agent_runtime.state import codec
from agent_runtime.state import configmap_layout as layout
from agent_runtime.state.batching import GroupCommit, Pending, seal_each
from agent_runtime.state.errors import StateError, StateFull, StateUnreadable
from agent_runtime.state.kube import ConfigMaps, Conflict
from agent_runtime.state.lifecycle import WriteGate
from agent_runtime.state.model import (
    CheckpointInfo,
    JournalEntry,
    MemoryState,
    Position,
    Restored,
    apply_entry,
)
from agent_runtime.state.recovery import (
    CHECKPOINT_KIND,
    JOURNAL_KIND,
    StoredCheckpoint,
    StoredSegment,
    recover,
)
from agent_runtime.state.sealing import SealedStore

log = logging.getLogger("agent_runtime.state.configmap")

JOURNAL_BUDGET_BYTES = 640 * 1024
JOURNAL_HARD_LIMIT_BYTES = 960 * 1024  # deletes may still go in while the state is too big
WARN_FRACTION = 0.8  # of the chunks' capacity: readiness warns and a log line says so
CONFLICT_RETRIES = 5


class ConfigMapStore(SealedStore):
    """Encrypted state in the replica's own ConfigMaps."""

    def __init__(
        self,
        api: KubeClient,
        namespace: str,
        replica: str,
        keyring: KeyRing,
        context_base: RecordContext,
        *,
        chunk_bytes: int = layout.CHUNK_BYTES,
        journal_budget_bytes: int = JOURNAL_BUDGET_BYTES,
        conflict_retries: int = CONFLICT_RETRIES,
        request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owns_client: bool = False,
    ) -> None:
        self._maps = ConfigMaps(api, namespace, request_timeout_seconds)
        self._api = api
        self._owns_client = owns_client  # close() closes it (the runtime's own store)
        self._namespace = namespace
        self._name = layout.commit_name(replica)
        self._replica = replica
        super().__init__(keyring, context_base)
        self._labels = layout.labels_for(context_base.agent)
        self._chunk_bytes = chunk_bytes
        self._journal_budget = journal_budget_bytes
        self._retries = conflict_retries
        self._clock = clock
        self._gate = WriteGate(self.describe())
        self._lock = asyncio.Lock()  # one writer of the commit point at a time
        self._commit_obj: dict[str, Any] | None = None
        # The body of the last commit-point write that got no answer (see _is_unconfirmed).
        self._unconfirmed: dict[str, Any] | None = None
        self._commit = layout.Commit(None)
        self._journal: dict[str, bytes] = {}
        self._good: layout.SlotRef | None = None  # the newest checkpoint known to open
        self._quarantined: layout.SlotRef | None = None
        self._committed_generation = -1
        self._last_info: CheckpointInfo | None = None
        self._segment = 0
        self._shadow: MemoryState = {}
        self._batches = GroupCommit(self.describe(), self._write)

    def describe(self) -> str:
        return f"configmap:{self._namespace}/{self._name}"

    # -- load -------------------------------------------------------------------------

    async def load(self) -> Restored:
        self._gate.begin_load()
        try:
            restored = await self._load()
        except StateUnreadable as exc:
            self._gate.refuse(exc)
            raise
        self._shadow = {k: [dict(m) for m in v] for k, v in restored.state.items()}
        self._segment = self._take_number()
        self._erasure_replayed(restored)
        self.position = restored.position
        self._gate.loaded = True
        return restored

    async def _load(self) -> Restored:
        obj = await self._maps.get(self._name)
        if obj is None:
            return Restored({}, None, 0, [])
        try:
            commit = layout.Commit.decode((obj.get("data") or {}).get("commit"))
        except layout.MalformedCommit as exc:
            reason = f"the commit point is malformed: {exc}"
            raise StateUnreadable(f"{self.describe()}: {reason}") from None
        journal = layout.binary_of(obj)
        refs: dict[int, layout.SlotRef] = {}
        checkpoints: list[StoredCheckpoint] = []
        broken: list[layout.SlotRef] = []
        for ref in (commit.current, commit.previous):
            if ref is None:
                continue
            blob = await self._read_slot(ref)
            if blob is None:
                broken.append(ref)
                continue
            refs[ref.generation] = ref
            label = f"checkpoint generation {ref.generation} (slot {ref.slot})"
            checkpoints.append(StoredCheckpoint(ref.generation, label, blob))
        if commit.current is not None and not checkpoints:
            raise StateUnreadable(
                f"{self.describe()}: the chunks of generation {commit.current.generation} "
                "are missing or do not match the SHA-256 in the commit point, and no older "
                "generation is readable"
            )
        segments: dict[int, list[tuple[int, bytes]]] = {}
        for key, value in journal.items():
            position = layout.parse_journal_key(key)
            if position is not None:
                segments.setdefault(position[0], []).append((position[1], value))
        stored_segments = [
            StoredSegment(num, f"journal segment {num}", [v for _, v in sorted(records)])
            for num, records in segments.items()
        ]
        recovery = recover(self._keyring, self._base, checkpoints, stored_segments)

        restored = recovery.restored
        for ref in broken:
            restored.warnings.insert(
                0,
                f"checkpoint generation {ref.generation} (slot {ref.slot}) has missing or "
                "altered chunks; "
                + (
                    f"restored generation {restored.checkpoint.generation}"
                    if restored.checkpoint
                    else "no checkpoint restored"
                ),
            )
        chosen = refs.get(restored.checkpoint.generation) if restored.checkpoint else None
        if chosen is not None and restored.checkpoint is not None:
            restored.checkpoint = CheckpointInfo(
                chosen.generation,
                datetime.fromisoformat(chosen.time),
                chosen.bytes,
                chosen.key_id,
                restored.checkpoint.duration_seconds,
            )
        if chosen is not None and commit.current is not None and chosen != commit.current:
            self._quarantined = commit.current
        # Drop the journal records replay set aside; the next write stores the rest.
        kept: dict[str, bytes] = {}
        for key, value in journal.items():
            position = layout.parse_journal_key(key)
            if position is None:
                continue
            limit = recovery.valid_records.get(position[0])
            if limit is not None and position[1] >= limit:
                continue
            kept[key] = value
        self._commit_obj = obj
        self._commit = commit
        self._journal = kept
        self._good = chosen
        self._committed_generation = chosen.generation if chosen else -1
        numbers = [recovery.highest_number]
        numbers += [r.generation for r in (commit.current, commit.previous) if r is not None]
        self._next_number = max(numbers) + 1
        return restored

    async def _read_slot(self, ref: layout.SlotRef) -> bytes | None:
        """The sealed blob of a slot, or None when a chunk is missing or the hash differs."""
        parts: list[bytes] = []
        for index in range(ref.chunks):
            obj = await self._maps.get(layout.chunk_name(self._replica, ref.slot, index))
            if obj is None:
                return None
            parts.append(layout.binary_of(obj).get("chunk", b""))
        blob = b"".join(parts)
        if len(blob) != ref.bytes or hashlib.sha256(blob).hexdigest() != ref.sha256:
            return None
        return blob

    # -- journal ----------------------------------------------------------------------

    async def append(self, entry: JournalEntry) -> None:
        self._gate.check_writable()
        self._note_erasure(entry)
        await self._batches.append(self._segment, entry)

    async def _write(self, batch: list[Pending]) -> None:
        async with self._lock:
            await self._write_entries(batch)

    async def _write_entries(self, batch: list[Pending]) -> None:
        self._gate.check_writable()
        # Entries older than the committed checkpoint are already part of it.
        live = [p for p in batch if p.segment >= self._committed_generation]
        if not live:
            return
        additions = self._seal_batch(live)
        if not additions:
            return
        incoming = sum(len(k) + len(v) * 4 // 3 + 4 for k, v in additions.items())
        if self._journal and self._journal_bytes() + incoming > self._journal_budget:
            live, additions = await self._compact(live, additions, incoming)

        def change(
            commit: layout.Commit, journal: dict[str, bytes]
        ) -> tuple[layout.Commit, dict[str, bytes]]:
            return commit, {**journal, **additions}

        await self._update_commit(change)
        for number in {item.segment for item in live}:
            self._advance(Position(number, self._segment_length(number)))
        for item in live:
            if item.segment == self._segment:  # newer than the last rotation's state
                apply_entry(self._shadow, item.entry)

    async def _compact(
        self, live: list[Pending], additions: dict[str, bytes], incoming: int
    ) -> tuple[list[Pending], dict[str, bytes]]:
        """Checkpoint the shadow state so the journal starts over; the batch renumbered.

        Once the state is known not to fit, compaction is not retried by every append (each
        try encodes and seals the whole state): appends fail at once with StateFull, except
        deletes, let in while the commit point has room so that clients can free space. The
        periodic checkpoint tries again and clears the condition when the state fits.
        """
        if self._gate.full is not None:
            deletes_only = all(p.entry.op == "delete" for p in live)
            if deletes_only and self._journal_bytes() + incoming <= JOURNAL_HARD_LIMIT_BYTES:
                return live, additions
            raise StateFull(f"{self.describe()}: {self._gate.full}")
        old_segment = self._segment
        snapshot = self._shadow
        generation, now = self._rotate(snapshot)
        for item in (*live, *self._batches.pending):
            if item.segment == old_segment:
                item.segment = generation
        await self._write_checkpoint(generation, now, snapshot)
        live = [p for p in live if p.segment >= self._committed_generation]
        return live, self._seal_batch(live)

    def _seal_batch(self, batch: list[Pending]) -> dict[str, bytes]:
        """Seal entries under their journal keys, numbered after what is stored.

        An entry that cannot be encoded fails its own append and is removed from `batch`,
        so the caller neither writes it nor applies it to the shadow state.
        """
        sealed = seal_each(batch, self._segment_length, self._seal_entry)
        batch[:] = [s.pending for s in sealed]
        return {layout.journal_key(s.pending.segment, s.index): s.record for s in sealed}

    def _seal_entry(self, item: Pending, index: int) -> bytes:
        after = self.position if index == 0 else None
        plaintext = codec.encode_entry(item.entry, item.segment, index, after=after)
        return self._seal(plaintext, JOURNAL_KIND)

    def _segment_length(self, segment: int) -> int:
        prefix = f"j-{segment:08d}-"
        return sum(1 for key in self._journal if key.startswith(prefix))

    def _journal_bytes(self) -> int:
        return sum(len(k) + len(v) * 4 // 3 + 4 for k, v in self._journal.items())

    # -- checkpoints ------------------------------------------------------------------

    async def checkpoint(self, state: MemoryState) -> CheckpointInfo:
        self._gate.check_writable()
        generation, now = self._rotate(state)
        # Compactions never erase: their snapshot (the store's own copy) may not yet hold
        # a deletion that is being appended; this checkpoint's state does (protocol.py).
        erase = self._take_erasure()
        try:
            async with self._lock:
                self._gate.check_writable()
                if self._committed_generation > generation and self._last_info is not None:
                    self._erasure_not_done(erase)
                    return self._last_info  # a compaction already wrote a newer generation
                return await self._write_checkpoint(generation, now, state, erase=erase)
        except BaseException:
            self._erasure_not_done(erase)
            raise

    def _rotate(self, state: MemoryState) -> tuple[int, datetime]:
        """Synchronously: start a new segment and let `state` go (see protocol.py).

        From here on the store's own copy is a fresh one, so nothing changes `state`
        while a worker thread encodes it for the checkpoint.
        """
        generation = self._take_number()
        self._segment = generation
        now = self._clock()
        self._shadow = {k: [dict(m) for m in v] for k, v in state.items()}
        return generation, now

    async def _write_checkpoint(
        self, generation: int, now: datetime, state: MemoryState, *, erase: bool = False
    ) -> CheckpointInfo:
        started = time.perf_counter()
        parts = await codec.checkpoint_parts_in_slices(generation, now, state, self._bodies)
        sealed = await asyncio.to_thread(self._sealed_checkpoint, parts)
        self._check_room(len(sealed))
        chunks = layout.split_chunks(sealed, self._chunk_bytes)
        slot = layout.other_slot(self._good.slot if self._good else None)
        for index, chunk in enumerate(chunks):
            await self._put_chunk(layout.chunk_name(self._replica, slot, index), chunk)
        ref = layout.SlotRef(
            slot=slot,
            generation=generation,
            chunks=len(chunks),
            sha256=hashlib.sha256(sealed).hexdigest(),
            bytes=len(sealed),
            key_id=self._keyring.active_key_id,
            time=now.isoformat(),
        )
        good = self._good

        def change(
            commit: layout.Commit, journal: dict[str, bytes]
        ) -> tuple[layout.Commit, dict[str, bytes]]:
            kept = {
                key: value
                for key, value in journal.items()
                if (pos := layout.parse_journal_key(key)) is not None and pos[0] >= generation
            }
            if erase:
                return layout.Commit(ref), kept
            previous = good if good is not None and good.slot != slot else None
            return layout.Commit(ref, previous, self._quarantined), kept

        await self._update_commit(change)
        if erase:
            self._quarantined = None
            await self._blank_chunks_except(slot, len(chunks))
        self._good = ref
        self._committed_generation = generation
        self._advance(Position(generation, 0))
        self._last_info = CheckpointInfo(
            generation, now, len(sealed), ref.key_id, time.perf_counter() - started
        )
        return self._last_info

    async def _blank_chunks_except(self, slot: str, count: int) -> None:
        """Empty every chunk but the first `count` of `slot`: older generations live there.

        The runtime's Role may update its state objects but not delete them, so the
        chunks stay as empty ConfigMaps; one that does not exist is left absent.
        """
        for each in ("a", "b"):
            for index in range(count if each == slot else 0, layout.MAX_CHUNKS):
                name = layout.chunk_name(self._replica, each, index)
                await self._maps.replace(layout.configmap(name, self._namespace, self._labels))

    def _sealed_checkpoint(self, parts: list[bytes]) -> bytes:
        """Join and seal a snapshot's parts, in a worker thread: both release the GIL."""
        return self._seal(b"".join(parts), CHECKPOINT_KIND)

    def _check_room(self, size: int) -> None:
        """Refuse a checkpoint the chunks cannot hold; warn from WARN_FRACTION of them."""
        capacity = layout.MAX_CHUNKS * self._chunk_bytes
        if size > capacity:
            raise self._gate.out_of_space(
                f"sealed state is {size} bytes, more than {layout.MAX_CHUNKS} ConfigMaps of "
                f"{self._chunk_bytes} bytes can hold; delete sessions, or use the pvc backend "
                "(spec.state.backend: pvc) for agents with this much memory"
            )
        self._gate.full = None
        warning = None
        if size >= WARN_FRACTION * capacity:
            warning = (
                f"sealed state uses {size * 100 // capacity}% of the {capacity} bytes the "
                "configmap backend holds; consider the pvc backend"
            )
            if self._gate.warning is None:
                log.warning("state store nearly full: %s", warning)
        self._gate.warning = warning

    async def _put_chunk(self, name: str, chunk: bytes) -> None:
        body = layout.configmap(name, self._namespace, self._labels, binary={"chunk": chunk})
        if await self._maps.replace(body) is not None:
            return
        try:
            await self._maps.create(body)
        except Conflict:  # created meanwhile: replace it after all
            if await self._maps.replace(body) is None:
                raise StateError(f"configmap {name} disappeared while being written") from None

    async def _update_commit(
        self,
        change: Callable[[layout.Commit, dict[str, bytes]], tuple[layout.Commit, dict[str, bytes]]],
    ) -> None:
        """Apply `change` to the commit point under its resourceVersion, retrying on 409."""
        for _ in range(self._retries + 1):
            commit, journal = change(self._commit, dict(self._journal))
            body = self._commit_body(commit, journal)
            try:
                if self._commit_obj is None:
                    written = await self._maps.create(body)
                else:
                    maybe = await self._maps.replace(body)
                    if maybe is None:
                        self._fail("the commit point was deleted by someone else")
                    written = maybe
            except Conflict:
                fresh = await self._maps.get(self._name)
                if not (self._unchanged(fresh) or self._is_unconfirmed(fresh)):
                    self._fail("the commit point was changed by another writer")
                # Either only metadata moved, or our own unconfirmed write landed late: both
                # are overwritten with what this store holds (the late one was refused to
                # its callers, and its checkpoint slot, if any, is not the committed one).
                self._commit_obj = fresh
                continue
            except StateError:
                # No answer (a deadline, a cut connection): the write may still arrive.
                self._unconfirmed = body
                raise
            self._commit_obj = written
            self._unconfirmed = None
            self._commit = commit
            self._journal = journal
            return
        raise StateError(
            f"{self.describe()}: update conflicted {self._retries + 1} times in a row; giving up"
        )

    def _commit_body(self, commit: layout.Commit, journal: dict[str, bytes]) -> dict[str, Any]:
        old_meta = (self._commit_obj or {}).get("metadata") or {}
        body = layout.configmap(
            self._name,
            self._namespace,
            {**(old_meta.get("labels") or {}), **self._labels},
            data={"commit": commit.encode()} if commit.current else None,
            binary=journal,
            resource_version=old_meta.get("resourceVersion"),
        )
        for field in ("annotations", "ownerReferences"):
            if old_meta.get(field):
                body["metadata"][field] = old_meta[field]
        return body

    def _unchanged(self, fresh: dict[str, Any] | None) -> bool:
        """After a 409: is the commit point still what we last wrote (only metadata moved)?"""
        return _same_content(fresh, self._commit_obj)

    def _is_unconfirmed(self, fresh: dict[str, Any] | None) -> bool:
        """After a 409: is the commit point what our last unanswered write asked for? A
        request sent just before the API server went out of reach can land long after
        its caller gave up on it (TCP delivers it once the path is back)."""
        return _same_content(fresh, self._unconfirmed)

    def _fail(self, reason: str) -> NoReturn:
        self._gate.failure = reason
        raise StateError(f"{self.describe()}: {reason}; refusing further writes")

    # -- the rest ---------------------------------------------------------------------

    async def probe(self) -> str | None:
        warning = self._gate.check_ready()
        try:
            await self._maps.get(self._name)
        except (StateError, OSError) as exc:
            raise StateError(f"API server unreachable: {exc}") from exc
        return warning

    async def close(self) -> None:
        await self._batches.drain()
        self._gate.closed = True
        if self._owns_client:
            await self._api.close()


def _same_content(fresh: dict[str, Any] | None, known: dict[str, Any] | None) -> bool:
    """The same commit and the same journal keys (resourceVersion and labels aside)."""
    if fresh is None or known is None:
        return False
    ours = (known.get("data") or {}).get("commit")
    theirs = (fresh.get("data") or {}).get("commit")
    return ours == theirs and set(layout.binary_of(fresh)) == set(layout.binary_of(known))

"""An in-memory store for tests and `STATE_BACKEND=memory`.

It still seals every record and recovers through the same rules as the durable stores,
so tests that use it exercise encryption and replay; it simply forgets everything when
the process exits. A second instance can be given the first one's `records` to simulate
a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.state import codec
from agent_runtime.state.errors import StateUnreadable
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
    StoredCheckpoint,
    StoredSegment,
    recover,
)
from agent_runtime.state.sealing import SealedStore


@dataclass
class MemoryRecords:
    """The sealed bytes a MemoryStore holds (shareable to simulate a restart)."""

    checkpoints: dict[int, bytes] = field(default_factory=dict)
    segments: dict[int, list[bytes]] = field(default_factory=dict)


class MemoryStore(SealedStore):
    """Sealed records in a dict; the same recovery rules as the durable stores."""

    def __init__(
        self,
        keyring: KeyRing,
        context_base: RecordContext,
        *,
        generations: int = 3,
        records: MemoryRecords | None = None,
    ) -> None:
        super().__init__(keyring, context_base)
        self._generations = max(1, generations)
        self.records = records if records is not None else MemoryRecords()
        self._gate = WriteGate(self.describe())
        self._segment = 0

    def describe(self) -> str:
        return "memory"

    async def load(self) -> Restored:
        self._gate.begin_load()
        checkpoints = [
            StoredCheckpoint(gen, f"checkpoint {gen}", data)
            for gen, data in self.records.checkpoints.items()
        ]
        segments = [
            StoredSegment(num, f"journal segment {num}", list(recs))
            for num, recs in self.records.segments.items()
        ]
        try:
            recovery = recover(self._keyring, self._base, checkpoints, segments)
        except StateUnreadable as exc:
            self._gate.refuse(exc)
            raise
        for num, kept in recovery.valid_records.items():
            del self.records.segments[num][kept:]
        self._next_number = recovery.highest_number + 1
        self._segment = self._take_number()
        self._erasure_replayed(recovery.restored)
        self.position = recovery.restored.position
        self._gate.loaded = True
        return recovery.restored

    async def append(self, entry: JournalEntry) -> None:
        self._gate.check_writable()
        self._note_erasure(entry)
        records = self.records.segments.setdefault(self._segment, [])
        after = None if records else self.position
        plaintext = codec.encode_entry(entry, self._segment, len(records), after=after)
        records.append(self._seal(plaintext, JOURNAL_KIND))
        self._advance(Position(self._segment, len(records)))

    async def checkpoint(self, state: MemoryState) -> CheckpointInfo:
        self._gate.check_writable()
        generation = self._take_number()
        self._segment = generation
        erase = self._take_erasure()
        now = datetime.now(UTC)
        try:
            plaintext = codec.encode_checkpoint(generation, now, state, self._bodies)
            sealed = self._seal(plaintext, CHECKPOINT_KIND)
        except BaseException:
            self._erasure_not_done(erase)
            raise
        self.records.checkpoints[generation] = sealed
        kept = sorted(self.records.checkpoints)[-(1 if erase else self._generations) :]
        for gen in list(self.records.checkpoints):
            if gen < kept[0]:
                del self.records.checkpoints[gen]
        for num in list(self.records.segments):
            if num < kept[0]:
                del self.records.segments[num]
        self._advance(Position(generation, 0))
        return CheckpointInfo(generation, now, len(sealed), self._keyring.active_key_id, 0.0)

    async def probe(self) -> str | None:
        return self._gate.check_ready()

    async def close(self) -> None:
        self._gate.closed = True

"""Sessions: the conversation each caller builds, kept consistent and durable.

Each session has its own ``asyncio.Lock``: two concurrent POSTs on one session run one
after the other, so turns are never lost or interleaved, while different sessions run in
parallel. A turn changes the in-memory session first, then is appended to the journal,
and is acknowledged only when the append is durable (the store's ordering contract: a
checkpoint snapshot taken at any moment contains every entry already appended). A failed
append rolls the in-memory change back.

A session belongs to the client that created it: every call names the owner, and the
session is looked up by (client, session id). Another client's session and a session
that does not exist take the same path and raise the same ``SessionNotFound``, so no
answer tells them apart.

Before a turn reaches the model, ``quotas.Quotas`` refuses it if it would break a limit
(turns, bytes, sessions); idle sessions are erased by ``expire_idle``, which the
checkpoint loop calls.

If the stored state could not be read (wrong or missing key) the service is
``unavailable``: every session call raises ``StateUnavailable`` and no checkpoint is ever
written, so the unreadable state stays byte-for-byte as it was.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent_runtime.clock import SystemClock
from agent_runtime.errors import InvalidRequest, SessionNotFound, StateUnavailable
from agent_runtime.metrics import Metrics
from agent_runtime.providers.base import NO_USAGE, ChatTurn, Reply, TokenUsage
from agent_runtime.providers.guarded import GuardedModel, OnDelta
from agent_runtime.quotas import Quotas, SessionLimits
from agent_runtime.state import (
    CheckpointInfo,
    JournalEntry,
    MemoryState,
    Message,
    Restored,
    SessionKey,
    StateStore,
)
from agent_runtime.tools.loop import OnToolEvent

log = logging.getLogger("agent_runtime.sessions")

# Matched with ``fullmatch``: ``$`` also matches before a final newline, so ``match`` let
# ``abc\n`` through as an id distinct from ``abc``.
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_session_id(session_id: str) -> None:
    """InvalidRequest naming ``id`` unless the id is one SESSION_ID allows."""
    if not SESSION_ID.fullmatch(session_id):
        raise InvalidRequest(
            "id", "must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric"
        )


class SessionLocks:
    """One ``asyncio.Lock`` per session, kept only while someone holds or awaits it.

    ``async with locks(key):`` holds the session's lock. Each lock is kept in a plain
    dict with the number of turns holding or awaiting it, and dropped when that reaches
    zero: a ``WeakValueDictionary`` did the same with a weak reference, its callback and
    two lookups on every turn (issue 13).
    """

    def __init__(self) -> None:
        self._held: dict[SessionKey, _Held] = {}

    def __call__(self, key: SessionKey) -> _SessionTurn:
        return _SessionTurn(self._held, key)

    def __len__(self) -> int:
        """Sessions whose lock is held or awaited now."""
        return len(self._held)


class _Held:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _SessionTurn:
    """The ``async with`` of one turn on a session's lock."""

    __slots__ = ("_entry", "_key", "_table")

    def __init__(self, table: dict[SessionKey, _Held], key: SessionKey) -> None:
        self._table = table
        self._key = key

    async def __aenter__(self) -> None:
        entry = self._table.get(self._key)
        if entry is None:
            entry = self._table[self._key] = _Held()
        entry.users += 1
        self._entry = entry
        try:
            await entry.lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._entry.lock.release()
        self._leave()

    def _leave(self) -> None:
        entry = self._entry
        entry.users -= 1
        if not entry.users:
            del self._table[self._key]


@dataclass(frozen=True, slots=True)
class TurnResult:
    reply: str
    degraded: bool
    turn: int
    conversation: tuple[Message, ...] = ()
    """The stored messages the model was given (history and the question, no system
    message)."""
    usage: TokenUsage = NO_USAGE
    """The tokens of the turn's model calls (counted by the provider or estimated)."""


def answer_message(reply: Reply, at: str) -> Message:
    """The assistant's stored message; a turn that called tools keeps their record in it
    (``tools``: JSON of each call and result), so it is sealed with the turn."""
    answer: Message = {"role": "assistant", "content": reply.text, "at": at}
    if reply.tool_record:
        answer["tools"] = reply.tool_record
    return answer


class SessionService:
    def __init__(
        self,
        store: StateStore,
        model: GuardedModel,
        metrics: Metrics,
        quotas: Quotas | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self._metrics = metrics
        self.quotas = quotas or Quotas(SessionLimits(), SystemClock())
        self._sessions: MemoryState = {}
        self._lock = SessionLocks()
        self._checkpoint_lock = asyncio.Lock()
        self.unavailable_reason: str | None = "state not restored yet"
        self.restored: Restored | None = None
        self.last_checkpoint: CheckpointInfo | None = None
        self.dirty = False
        # Read at scrape time instead of being set on every turn.
        metrics.sessions.set_function(lambda: len(self._sessions))

    # -- startup -----------------------------------------------------------------------

    def adopt(self, restored: Restored) -> None:
        """Take the restored state as the starting point and open for requests."""
        self.restored = restored
        self._sessions = restored.state
        self.quotas.reset(restored.state)
        self.last_checkpoint = restored.checkpoint
        self.unavailable_reason = None
        self.dirty = restored.journal_entries_replayed > 0

    def refuse(self, reason: str) -> None:
        """The state could not be read: stay up, but serve no sessions and never checkpoint."""
        self.unavailable_reason = reason

    # -- requests ----------------------------------------------------------------------

    def _check(self, session_id: str) -> None:
        if self.unavailable_reason is not None:
            raise StateUnavailable(f"sessions are unavailable: {self.unavailable_reason}")
        check_session_id(session_id)

    async def post(
        self,
        client: str,
        session_id: str,
        content: str,
        *,
        system: str = "",
        on_delta: OnDelta | None = None,
        on_event: OnToolEvent | None = None,
    ) -> TurnResult:
        """One turn of `client`'s session `session_id`, which starts if it does not exist.

        ``system`` (the Agent's instructions) leads the conversation sent to the model and
        is never stored. With ``on_delta`` the reply streams out as the model writes it;
        the turn is still journaled, and so acknowledged, only once the reply is complete.
        """
        self._check(session_id)
        deadline = self.model.deadline()  # from arrival: waiting for the lock counts too
        key = SessionKey(client, session_id)
        async with self._lock(key):
            self.quotas.admit(key, content)
            history = self._sessions.get(key, [])
            question: Message = {"role": "user", "content": content, "at": self.quotas.timestamp()}
            seen = (*history, question)
            # One copy of the history per turn, not two: without instructions the model
            # gets ``seen`` itself (nothing downstream changes a conversation it is given).
            prompt: Sequence[ChatTurn] = (
                ({"role": "system", "content": system}, *seen) if system else seen
            )
            reply = await self.model.reply(
                prompt, deadline=deadline, on_delta=on_delta, on_event=on_event
            )
            answer = answer_message(reply, self.quotas.timestamp())
            messages = self._sessions.setdefault(key, [])
            messages.extend((question, answer))
            self.dirty = True
            entry = JournalEntry("append", session_id, (question, answer), client=client)
            try:
                await self.store.append(entry)
            except BaseException:
                del messages[-2:]
                if not messages:
                    self._sessions.pop(key, None)
                raise
            self.quotas.record(key, (question, answer))
            turn = self.quotas.turns(key)  # counted as turns are stored, not re-counted here
            return TurnResult(reply.text, reply.degraded, turn, seen, reply.usage)

    async def get(self, client: str, session_id: str) -> Sequence[Message]:
        """The messages of `client`'s session; SessionNotFound for anyone else's. Async
        like the shared store's, which reads the database."""
        self._check(session_id)
        messages = self._sessions.get(SessionKey(client, session_id))
        if messages is None:
            raise _not_found(session_id)
        return messages

    async def delete(self, client: str, session_id: str) -> None:
        """Erase `client`'s session: from memory now, from storage by the next checkpoint."""
        self._check(session_id)
        key = SessionKey(client, session_id)
        async with self._lock(key):
            if not await self._erase(key):
                raise _not_found(session_id)

    async def expire_idle(self) -> int:
        """Erase the sessions idle past the TTL, as a DELETE would; how many went."""
        expired = 0
        for key in self.quotas.idle():
            async with self._lock(key):
                if self.quotas.is_idle(key) and await self._erase(key):
                    expired += 1
        if expired:
            log.info("idle sessions expired", extra={"fields": {"sessions": expired}})
        return expired

    async def _erase(self, key: SessionKey) -> bool:
        """Remove a session and journal the deletion; False if there was none. Hold its lock."""
        messages = self._sessions.pop(key, None)
        if messages is None:
            return False
        self.dirty = True
        try:
            await self.store.append(JournalEntry("delete", key.session, client=key.client))
        except BaseException:
            self._sessions[key] = messages
            raise
        self.quotas.forget(key)
        return True

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # -- checkpoints -------------------------------------------------------------------

    async def checkpoint(self, *, force: bool = False) -> CheckpointInfo | None:
        """Write a checkpoint if anything changed (or ``force``); never when state is unread."""
        if self.unavailable_reason is not None:
            return None
        async with self._checkpoint_lock:
            if not (self.dirty or force):
                return None
            # Snapshot and call without an await in between: the store switches journal
            # segments synchronously, so the snapshot covers exactly the older entries.
            snapshot = {key: list(msgs) for key, msgs in self._sessions.items()}
            self.dirty = False
            started = time.perf_counter()
            try:
                info = await self.store.checkpoint(snapshot)
            except Exception:
                self.dirty = True
                self._metrics.checkpoint_failures.inc()
                log.exception("checkpoint failed")
                raise
        self._metrics.checkpoint_duration.observe(time.perf_counter() - started)
        self._metrics.checkpoint_bytes.set(info.bytes)
        self._metrics.checkpoint_last_success.set(info.time.timestamp())
        self.last_checkpoint = info
        log.info(
            "checkpoint written",
            extra={
                "fields": {
                    "generation": info.generation,
                    "bytes": info.bytes,
                    "key_id": info.key_id,
                    "sessions": len(self._sessions),
                }
            },
        )
        return info


def _not_found(session_id: str) -> SessionNotFound:
    """One error for a missing session and another client's: the text names only the id."""
    return SessionNotFound(f"session {session_id!r} does not exist")

"""Sessions in the shared PostgreSQL store: any replica serves any session.

The same public API as ``SessionService`` (``post``, ``get``, ``delete``, ``expire_idle``,
``checkpoint``), so routes and adapters do not care which one they hold. What differs:

- A plain turn (not streamed, no tools) is optimistic: read the session's row and the
  turns the cache lacks (one statement), ask the model with no transaction open, then
  append the turn in one autocommitted statement that only applies if the row still has
  the turn count that was read. If another turn (on any replica) or a delete came
  first, nothing is written, the reply is discarded, and the turn is asked again the
  pessimistic way below, so it is asked at most twice
  (``agentry_runtime_turn_conflicts_total`` counts those).
- A streamed turn, a turn with tools (a reply already sent, or a tool already run,
  cannot be taken back) and a turn after a conflict are one database transaction: lock
  the session's row ``FOR UPDATE`` (created if new), read the history, ask the model,
  insert the turn, commit, and only then answer; a concurrent turn waits for the lock.
- Either way turns are numbered 1..n without gap or duplicate, each reply was computed
  from every earlier committed turn, and a turn is acknowledged only once committed.
  Locally a per-session ``asyncio.Lock`` queues this replica's turns first, so one busy
  session holds at most one connection per replica and conflicts come only from turns
  of the same session on other replicas.
- Every wait (pool, lock, statements) is bounded by the request's deadline; a database
  that does not answer is a 503 with ``Retry-After`` (``StateUnavailable``), never a hang.
- A bounded LRU cache (``HotSessions``) keeps recent sessions' messages; the row's
  (id, turn count), read on every turn, tells whether the cached copy is still whole,
  and only the missing turns are read. Nothing is loaded at start.
- Limits: ``max_turns`` and ``max_session_bytes`` are checked on the row the turn is
  appended to (as read, when the append applies only to that row; locked otherwise);
  ``max_sessions`` is checked when a session is created, against the agent's sessions as
  counted at the last heartbeat plus those this replica created since (no ``count(*)``
  on the request path; replicas creating at once may pass it by what they create in
  one heartbeat interval);
  ``max_state_bytes`` bounds the cache's bytes (memory per replica); the idle TTL and
  ``STATE_RETENTION_SECONDS`` both expire sessions idle longer (the shorter one wins).
- ``maintain()`` (every checkpoint interval) expires idle sessions, re-seals rows under
  old keys with the active key in batches, and refreshes the counts the heartbeat shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from agent_runtime.clock import Clock
from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.errors import (
    SessionCapacityReached,
    SessionNotFound,
    SessionTooLarge,
    SessionTurnLimit,
    StateUnavailable,
)
from agent_runtime.metrics import Metrics
from agent_runtime.providers.base import ChatTurn, TokenUsage
from agent_runtime.providers.guarded import GuardedModel, OnDelta
from agent_runtime.quotas import Quotas, size_of
from agent_runtime.sessions import SessionLocks, TurnResult, answer_message, check_session_id
from agent_runtime.state import CheckpointInfo, Message, SessionKey, StateError
from agent_runtime.state.postgres import PostgresStore, SchemaTooNew, StoreStats
from agent_runtime.state.postgres.rows import TurnSeal
from agent_runtime.state.postgres.store import (
    DatabaseUnavailable,
    SessionRow,
    TurnRow,
    TurnTransaction,
)
from agent_runtime.tools.loop import OnToolEvent

log = logging.getLogger("agent_runtime.shared_sessions")

RETRY_AFTER_SECONDS = 2
WRITE_GRACE_SECONDS = 5.0
"""After the model replied, the insert and commit get at least this long, even past the
request's deadline: the reply is paid for, and dropping it would only make the caller retry."""
MAINTENANCE_TIMEOUT_SECONDS = 30.0
REENCRYPT_BATCH = 500
EXPIRE_BATCH = 500


@dataclass
class CachedSession:
    id: int
    turns: int
    messages: list[Message] = field(default_factory=list)
    bytes: int = 0

    def copy(self) -> CachedSession:
        """A copy whose message list a turn may extend without touching the cache's."""
        return CachedSession(self.id, self.turns, list(self.messages), self.bytes)


class HotSessions:
    """LRU of recently used sessions, bounded by count and by bytes of message text."""

    def __init__(self, max_sessions: int, max_bytes: int) -> None:
        self.max_sessions = max(max_sessions, 0)
        self.max_bytes = max_bytes
        self._entries: OrderedDict[SessionKey, CachedSession] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: SessionKey) -> CachedSession | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: SessionKey, entry: CachedSession) -> None:
        self.drop(key)
        if self.max_sessions == 0:
            return
        self._entries[key] = entry
        self.bytes += entry.bytes
        while len(self._entries) > self.max_sessions or (
            0 < self.max_bytes < self.bytes and len(self._entries) > 1
        ):
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.bytes

    def drop(self, key: SessionKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.bytes


@dataclass(frozen=True, slots=True)
class Ask:
    """One turn as the service was asked for it, with its deadline (event-loop time)."""

    key: SessionKey
    content: str
    deadline: float
    lead: list[ChatTurn]
    on_delta: OnDelta | None
    on_event: OnToolEvent | None


def _base(cached: CachedSession | None, row: SessionRow) -> CachedSession:
    """The cached copy if it belongs to this row and is not ahead of it; empty otherwise
    (a re-created session has a new id and is read whole)."""
    if cached is None or cached.id != row.id or cached.turns > row.turns:
        return CachedSession(row.id, 0)
    return cached


def unavailable(reason: str) -> StateUnavailable:
    return StateUnavailable(f"session store unavailable: {reason}", retry_after=RETRY_AFTER_SECONDS)


class SharedSessionService:
    """``SessionService`` over ``PostgresStore``: see the module docstring."""

    def __init__(
        self,
        store: PostgresStore,
        model: GuardedModel,
        metrics: Metrics,
        quotas: Quotas,
        *,
        keyring: KeyRing,
        context: RecordContext,
        clock: Clock,
        cache_sessions: int = 1000,
        retention_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.model = model
        self.quotas = quotas
        self._metrics = metrics
        self._clock = clock
        self._seal = TurnSeal(keyring, context)
        self.cache = HotSessions(cache_sessions, quotas.limits.max_state_bytes)
        self._lock = SessionLocks()
        ttls = [t for t in (retention_seconds, quotas.limits.idle_ttl_seconds) if t > 0]
        self.retention_seconds = min(ttls) if ttls else 0.0
        self.unavailable_reason: str | None = "database not migrated yet"
        self.stats: StoreStats | None = None
        # Sessions this replica created since the last count: with that count, what
        # MAX_SESSIONS is checked against, so a new session costs no count(*) of them all.
        self._created_since_count = 0
        # The journal service's attributes that app.py reads; a shared store has none.
        self.restored = None
        self.last_checkpoint: CheckpointInfo | None = None
        self.dirty = False
        metrics.sessions.set_function(lambda: self.session_count)

    @property
    def session_count(self) -> int:
        """Sessions of this agent in the database, as of the last maintenance pass."""
        return self.stats.sessions if self.stats is not None else 0

    @property
    def keyring(self) -> KeyRing:
        return self._seal.keyring

    # -- start-up -----------------------------------------------------------------------

    async def start(self) -> bool:
        """Migrate the schema; on failure stay unavailable with the reason. True if ready."""
        try:
            found = await self.store.migrate()
        except SchemaTooNew as error:
            self.refuse(str(error))
            log.error("refusing the database: %s", error)
            return False
        except StateError as error:
            self.refuse(str(error))
            log.warning("database not ready at start-up; retrying: %s", error)
            return False
        self.unavailable_reason = None
        log.info(
            "database schema ready",
            extra={"fields": {"store": self.store.describe(), "found_version": found}},
        )
        await self.refresh_stats()
        return True

    def refuse(self, reason: str) -> None:
        self.unavailable_reason = reason

    async def run_until_started(self, interval: float) -> None:
        """Retry ``start`` until the database is there and its schema is one we know."""
        while self.unavailable_reason is not None and not await self.start():
            await self._clock.sleep(interval)

    # -- requests -----------------------------------------------------------------------

    def _check(self, session_id: str) -> None:
        if self.unavailable_reason is not None:
            raise unavailable(self.unavailable_reason)
        check_session_id(session_id)

    def _remaining(self, deadline: float) -> float:
        return deadline - asyncio.get_running_loop().time()

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
        """One turn; acknowledged only once its row has committed. ``system`` leads the
        conversation sent to the model and is never stored; with ``on_delta`` the reply
        streams out as it is written, and is still committed before the turn ends."""
        self._check(session_id)
        deadline = self.model.deadline()
        key = SessionKey(client, session_id)
        lead: list[ChatTurn] = [{"role": "system", "content": system}] if system else []
        try:
            async with self._lock(key):
                return await self._turn(Ask(key, content, deadline, lead, on_delta, on_event))
        except DatabaseUnavailable as error:
            self.cache.drop(key)  # the commit may or may not have happened: re-read next time
            raise unavailable(str(error)) from None
        except StateError as error:
            raise unavailable(str(error)) from None

    async def _turn(self, ask: Ask) -> TurnResult:
        """Optimistic first when asking the model again costs nothing but the model call
        (no stream already sent, no tool already run); under the row lock otherwise, and
        after a conflict, so a turn is asked at most twice."""
        if ask.on_delta is not None or self.model.toolbox is not None:
            return await self._locked_turn(ask)
        outcome = await self._optimistic_turn(ask)
        if isinstance(outcome, TurnResult):
            return outcome
        self._metrics.turn_conflicts.inc()
        result = await self._locked_turn(ask)
        return replace(result, usage=result.usage + outcome)

    async def _optimistic_turn(self, ask: Ask) -> TurnResult | TokenUsage:
        """Read, ask, then append only if the session has not moved: two statements and no
        connection held while the model answers. The discarded reply's usage on conflict."""
        history, row = await self._read_history(ask.key, ask.deadline)
        await self._admit(row, ask.key, ask.content, ask.deadline)
        question = self._question(ask)
        seen = (*history.messages, question)
        reply = await self.model.reply([*ask.lead, *seen], deadline=ask.deadline)
        added = (question, answer_message(reply, self.quotas.timestamp()))
        written = self._turn_row(ask.key, row.turns + 1, added)
        expected = None if row.created else (row.id, row.turns)
        budget = self._write_budget(ask.deadline)
        session_id = await self.store.append_turn(ask.key, expected, written, budget)
        if session_id is None:
            return reply.usage
        self._remember(ask.key, history, session_id, added, written.size, created=row.created)
        return TurnResult(reply.text, reply.degraded, row.turns + 1, seen, reply.usage)

    async def _locked_turn(self, ask: Ask) -> TurnResult:
        """The turn as one transaction holding the session's row lock (module docstring)."""
        now = self._clock.now()
        async with self.store.turn(ask.key, now, self._remaining(ask.deadline)) as tx:
            row = tx.session
            await self._admit(row, ask.key, ask.content, ask.deadline)
            history = await self._history(tx, ask.key, ask.deadline)
            question = self._question(ask)
            seen = (*history.messages, question)
            reply = await self.model.reply(
                [*ask.lead, *seen],
                deadline=ask.deadline,
                on_delta=ask.on_delta,
                on_event=ask.on_event,
            )
            added = (question, answer_message(reply, self.quotas.timestamp()))
            written = self._turn_row(ask.key, row.turns + 1, added)
            await tx.commit_turn(written, self._write_budget(ask.deadline))
        self._remember(ask.key, history, row.id, added, written.size, created=row.created)
        return TurnResult(reply.text, reply.degraded, row.turns + 1, seen, reply.usage)

    def _question(self, ask: Ask) -> Message:
        return {"role": "user", "content": ask.content, "at": self.quotas.timestamp()}

    def _turn_row(self, key: SessionKey, turn: int, added: tuple[Message, Message]) -> TurnRow:
        """The turn's row: its two messages sealed for their place, their size, the time."""
        return TurnRow(
            self.keyring.active_key_id,
            self._seal.seal(key, turn, added),
            size_of(added),
            self._clock.now(),
        )

    def _write_budget(self, deadline: float) -> float:
        """The append's budget: the request's time left, or the grace if that is shorter."""
        return max(self._remaining(deadline), WRITE_GRACE_SECONDS)

    def _remember(
        self,
        key: SessionKey,
        history: CachedSession,
        session_id: int,
        added: tuple[Message, Message],
        size: int,
        *,
        created: bool,
    ) -> None:
        """Cache the session as committed with `added`, and count a session created here."""
        history.id = session_id
        history.messages.extend(added)
        history.turns, history.bytes = history.turns + 1, history.bytes + size
        self.cache.put(key, history)
        if created:
            self._created_since_count += 1

    async def _admit(self, row: SessionRow, key: SessionKey, content: str, deadline: float) -> None:
        """The session limits, on the row as the turn found it (see the module docstring)."""
        limits = self.quotas.limits
        if row.created and limits.max_sessions > 0:
            if self.stats is None:  # not counted yet: count now, once
                await self.refresh_stats(self._remaining(deadline))
            known = self.session_count + self._created_since_count
            if known >= limits.max_sessions:
                raise SessionCapacityReached(
                    f"this agent holds AGENTRY_MAX_SESSIONS={limits.max_sessions} sessions; "
                    "delete one, or wait for idle sessions to expire"
                )
        if 0 < limits.max_turns <= row.turns:
            raise SessionTurnLimit(
                f"session {key.session!r} has reached AGENTRY_MAX_TURNS={limits.max_turns} "
                "turns; delete it or start a new session"
            )
        if 0 < limits.max_session_bytes < row.bytes + len(content.encode("utf-8")):
            raise SessionTooLarge(
                f"session {key.session!r} would exceed AGENTRY_MAX_SESSION_BYTES="
                f"{limits.max_session_bytes}; delete it or start a new session"
            )

    async def _history(
        self, tx: TurnTransaction, key: SessionKey, deadline: float
    ) -> CachedSession:
        """The session's messages as committed: the cached copy if the locked row says it
        is whole, plus any turns another replica added; read whole otherwise."""
        row = tx.session
        cached = _base(self.cache.get(key), row)
        if cached.turns < row.turns:
            rows = await tx.turns_after(cached.turns, self._remaining(deadline))
            cached = self._extend(key, cached, rows, row.turns)
        return cached.copy()

    def _extend(
        self, key: SessionKey, base: CachedSession, rows: list[tuple[int, bytes]], turns: int
    ) -> CachedSession:
        """`base` plus the opened `rows`, which must be exactly turns base.turns+1..turns."""
        numbers = [number for number, _ in rows]
        if numbers != list(range(base.turns + 1, turns + 1)):
            raise StateError(
                f"session {key.session!r} has turns {numbers[:5]}... where "
                f"{base.turns + 1}..{turns} were expected"
            )
        if not rows:  # the cached copy is whole: the common case, kept as it is
            return base
        added: list[Message] = []
        for number, sealed in rows:
            added.extend(self._seal.open(key, number, sealed))
        return CachedSession(base.id, turns, [*base.messages, *added], base.bytes + size_of(added))

    async def _read_history(
        self, key: SessionKey, deadline: float
    ) -> tuple[CachedSession, SessionRow]:
        """The session's committed messages and its row, from one statement: the cached
        copy plus the turns it lacks (whole when the id changed), or an empty new session
        (``created``) when there is none."""
        cached = self.cache.get(key)
        known = (cached.id, cached.turns) if cached is not None else None
        found = await self.store.read(key, known, self._remaining(deadline))
        if found is None:
            self.cache.drop(key)
            return CachedSession(0, 0), SessionRow(0, 0, 0, created=True)
        row, rows = found
        entry = self._extend(key, _base(cached, row), rows, row.turns)
        self.cache.put(key, entry)
        return entry.copy(), row

    async def get(self, client: str, session_id: str) -> Sequence[Message]:
        """The committed messages of `client`'s session; SessionNotFound for anyone else's."""
        self._check(session_id)
        key = SessionKey(client, session_id)
        try:
            history, row = await self._read_history(key, self.model.deadline())
        except StateError as error:  # DatabaseUnavailable included
            raise unavailable(str(error)) from None
        if row.created:
            raise _not_found(session_id)
        return history.messages

    async def delete(self, client: str, session_id: str) -> None:
        """Delete the session's rows now (waiting, within the deadline, for a turn on it)."""
        self._check(session_id)
        key = SessionKey(client, session_id)
        async with self._lock(key):
            self.cache.drop(key)
            try:
                deleted = await self.store.delete(key, self._remaining(self.model.deadline()))
            except StateError as error:
                raise unavailable(str(error)) from None
        if not deleted:
            raise _not_found(session_id)

    async def expire_idle(self) -> int:
        """Delete the sessions idle past the retention (or idle TTL); how many went."""
        if self.retention_seconds <= 0 or self.unavailable_reason is not None:
            return 0
        cutoff = self._clock.now() - timedelta(seconds=self.retention_seconds)
        expired = 0
        while True:
            keys = await self.store.expire(cutoff, EXPIRE_BATCH, MAINTENANCE_TIMEOUT_SECONDS)
            for key in keys:
                self.cache.drop(key)
            expired += len(keys)
            if len(keys) < EXPIRE_BATCH:
                break
        if expired:
            log.info("idle sessions expired", extra={"fields": {"sessions": expired}})
        return expired

    async def checkpoint(self, *, force: bool = False) -> CheckpointInfo | None:
        """Nothing to do: every turn is committed before it is acknowledged."""
        return None

    # -- background ---------------------------------------------------------------------

    async def reencrypt(self) -> int:
        """Move every row under an old key to the active key, a batch per transaction."""
        moved = 0
        active = self.keyring.active_key_id
        while True:
            done = await self.store.reencrypt(
                active, self._seal.reseal, REENCRYPT_BATCH, MAINTENANCE_TIMEOUT_SECONDS
            )
            moved += done
            if done < REENCRYPT_BATCH:
                break
            await asyncio.sleep(0)  # let requests run between batches
        if moved:
            log.info("rows re-encrypted", extra={"fields": {"rows": moved, "key_id": active}})
        return moved

    async def maintain(self) -> None:
        """Expire idle sessions, re-encrypt old rows, refresh the counts; one failing part
        does not stop the others (each is logged and tried again next time)."""
        if self.unavailable_reason is not None:
            return
        for part in (self.expire_idle, self.reencrypt):
            try:
                await part()
            except StateError as error:
                log.warning("%s failed: %s", part.__name__, error)
        await self.refresh_stats()

    async def refresh_stats(self, budget: float = MAINTENANCE_TIMEOUT_SECONDS) -> None:
        """Count the agent's sessions and its rows under old keys (kept on failure)."""
        if self.unavailable_reason is not None:
            return
        try:
            created = self._created_since_count
            self.stats = await self.store.stats(self.keyring.active_key_id, budget)
            self._created_since_count -= created
        except StateError as error:
            log.warning("counting the store's rows failed: %s", error)

    def describe_stats(self) -> str:
        if self.stats is None:
            return "postgres: not counted yet"
        return (
            f"postgres: {self.stats.sessions} sessions, "
            f"{self.stats.rows_under_old_keys} rows under old keys"
        )


def _not_found(session_id: str) -> SessionNotFound:
    return SessionNotFound(f"session {session_id!r} does not exist")

"""The SQL of the shared store, with every wait bounded and every failure a ``StateError``.

``PostgresStore`` owns an asyncpg pool (created lazily: a replica whose database is down
at start-up stays up and retries). Each method takes a ``budget`` (seconds) that bounds
the pool wait and every statement, so a stalled or unreachable database turns into
``DatabaseUnavailable`` (a ``StateError``) within the caller's deadline, never a hang.
A connection that failed or timed out is terminated, not handed back: the pool opens a
fresh one for the next caller, which is how the runtime reconnects after an outage.

Turns are serialized two ways (docs/state-and-encryption.md). ``append_turn()`` is the
optimistic one: a single autocommitted statement that appends the next turn only if the
session's row still has the turn count the caller read. ``turn()`` is the transaction:
it locks the session's row ``FOR UPDATE`` (creating the row if needed), and holds the
lock while the caller reads history, asks the model and inserts the next turn; a
concurrent turn of the same session on any replica waits on that lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from agent_runtime.config import redact_url
from agent_runtime.state.errors import StateError
from agent_runtime.state.model import SessionKey
from agent_runtime.state.postgres import schema
from agent_runtime.state.postgres.schema import Conn
from agent_runtime.state.postgres.url import ConnectionUrl, ConnectionUrlError

log = logging.getLogger("agent_runtime.state.postgres")

CONNECT_TIMEOUT_SECONDS = 5.0
RETIRE_SECONDS = 60.0
T = TypeVar("T")

# Errors that mean "the database cannot serve right now", as opposed to a bug.
_OUTAGE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.LockNotAvailableError,
    # The connection's protocol is out of step with the server. Seen when a server
    # shutting down sends its FATAL to an idle pooled connection and the next turn takes
    # that connection before the close arrives: asyncpg is still consuming the error.
    asyncpg.exceptions.InternalClientError,
)


_NEW_SESSION_TURN = (
    "WITH s AS (INSERT INTO sessions (namespace, agent, client, session, turns, bytes, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $7, $8, $8) "
    "ON CONFLICT (namespace, agent, client, session) DO NOTHING RETURNING id) "
    "INSERT INTO turns (session_id, turn, key_id, sealed, created_at) "
    "SELECT id, 1, $5, $6, $8 FROM s RETURNING session_id"
)
IDLE_TIME_RESOLUTION = timedelta(seconds=60)
"""How stale ``sessions.updated_at`` may be (``$7`` of ``_NEXT_TURN``): a
turn moves it only when it is older than this. The row then changes no indexed column on
most turns, so PostgreSQL updates it in place (a HOT update: no new index entries, no
dead ones for lookups to skip), and expiry waits this much longer so that it never
deletes a session early."""

_NEXT_TURN = (
    "WITH s AS (UPDATE sessions SET turns = $2 + 1, bytes = bytes + $5, "
    "updated_at = CASE WHEN $6 - updated_at < $7 THEN updated_at "
    "ELSE $6 END WHERE id = $1 AND turns = $2 RETURNING id) "
    "INSERT INTO turns (session_id, turn, key_id, sealed, created_at) "
    "SELECT id, $2 + 1, $3, $4, $6 FROM s RETURNING session_id"
)


_READ_BY_ID = (
    "SELECT s.id, s.turns, s.bytes, t.turn, t.sealed FROM sessions s "
    "LEFT JOIN turns t ON t.session_id = s.id AND t.turn > $2 "
    "WHERE s.id = $1 AND s.namespace = $3 AND s.agent = $4 AND s.client = $5 "
    "AND s.session = $6 ORDER BY t.turn"
)
_READ_BY_KEY = (
    "SELECT s.id, s.turns, s.bytes, t.turn, t.sealed FROM sessions s "
    "LEFT JOIN turns t ON t.session_id = s.id "
    "WHERE s.namespace = $1 AND s.agent = $2 AND s.client = $3 AND s.session = $4 "
    "ORDER BY t.turn"
)


class DatabaseUnavailable(StateError):
    """The database did not answer in time, or refused: a 503 for the caller."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    turns: int
    bytes: int
    created: bool = False


@dataclass(frozen=True, slots=True)
class TurnRow:
    """A turn's row as written: the sealed messages, the key that sealed them, their size
    in UTF-8 bytes (added to the session's count) and the time of the turn."""

    key_id: str
    sealed: bytes
    size: int
    at: datetime


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the heartbeat and readiness publish about the store."""

    sessions: int
    rows_under_old_keys: int


def describe_error(error: BaseException) -> str:
    """A short reason with no connection string in it."""
    if isinstance(error, TimeoutError):
        return "the database did not answer in time"
    if isinstance(error, asyncpg.exceptions.LockNotAvailableError):
        return "the session is busy with another turn"
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        return "the connection broke mid-protocol and was dropped"
    if isinstance(error, asyncpg.PostgresError):
        return f"{type(error).__name__}: {error.args[0] if error.args else ''}".strip()
    return f"{type(error).__name__}: {error}"


async def _keep_as_is(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, which by default costs a round trip per use to undo
    session state; this store sets none (search_path is fixed at connect, locks are
    transaction-scoped, and a connection that failed mid-transaction is terminated)."""


async def _rolled_back(conn: Conn, error: BaseException) -> bool:
    """After a refusal by the caller (a quota, the model): roll back and keep the connection.
    After a database failure, a budget or a cancellation: False, the connection goes."""
    if isinstance(error, (*_OUTAGE, asyncpg.PostgresError, asyncio.CancelledError)):
        return False
    if not isinstance(error, Exception):
        return False
    try:
        if conn.is_in_transaction():
            await asyncio.wait_for(conn.execute("ROLLBACK"), timeout=1.0)
    except Exception:
        return False
    return True


class PostgresStore:
    """The agent's rows in one schema of a PostgreSQL database."""

    def __init__(
        self,
        url: str | ConnectionUrl,
        *,
        namespace: str,
        agent: str,
        schema_name: str = "agentry",
        pool_size: int = 10,
        sslmode: str | None = None,
    ) -> None:
        self._url = url if isinstance(url, ConnectionUrl) else ConnectionUrl(url)
        self._pool_url = ""
        self._retiring: set[asyncio.Task[None]] = set()
        self.namespace = namespace
        self.agent = agent
        self.schema = schema_name
        self._pool_size = pool_size
        self._sslmode = sslmode
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    def describe(self) -> str:
        try:
            where = redact_url(self._url.current())
        except ConnectionUrlError as error:
            where = f"({error})"
        return f"postgres:{where} schema {self.schema}"

    # -- connections --------------------------------------------------------------------

    async def _get_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is not None and self._url.current() == self._pool_url:
            return pool  # the common case: no lock to take
        async with self._pool_lock:
            url = self._url.current()
            if self._pool is not None and url != self._pool_url:
                self._retire(self._pool)
                self._pool = None
            if self._pool is None:
                kwargs: dict[str, Any] = {}
                if self._sslmode is not None:
                    kwargs["ssl"] = self._sslmode
                self._pool_url = url
                self._pool = await asyncpg.create_pool(
                    url,
                    reset=_keep_as_is,
                    min_size=0,
                    max_size=self._pool_size,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    server_settings={"search_path": self.schema, "application_name": "agentry"},
                    **kwargs,
                )
            return self._pool

    def _retire(self, pool: asyncpg.Pool) -> None:
        """Close a pool built from an older URI once its connections are back (turns in
        flight finish on them), within a minute; new turns already use the new pool."""

        async def close() -> None:
            try:
                await asyncio.wait_for(pool.close(), timeout=RETIRE_SECONDS)
            except Exception:
                pool.terminate()

        task = asyncio.get_running_loop().create_task(close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @contextlib.asynccontextmanager
    async def _connection(self, budget: float) -> AsyncIterator[Conn]:
        """A pooled connection within `budget`; terminated (not reused) if anything fails."""
        try:
            async with asyncio.timeout(max(budget, 0.001)):
                pool = await self._get_pool()
                conn = await pool.acquire()
        except _OUTAGE as error:
            raise DatabaseUnavailable(f"database unreachable: {describe_error(error)}") from None
        except asyncpg.PostgresError as error:
            raise DatabaseUnavailable(f"database refused: {describe_error(error)}") from None
        except ConnectionUrlError as error:
            raise DatabaseUnavailable(str(error)) from None
        try:
            yield conn
        except BaseException as error:
            if not await _rolled_back(conn, error):
                # Broken or stalled: never hand it to the next caller. A connection the
                # server closed is already back in the pool, closed, which says so.
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
            if isinstance(error, _OUTAGE):
                raise DatabaseUnavailable(
                    f"database unreachable: {describe_error(error)}"
                ) from None
            if isinstance(error, asyncpg.PostgresError):
                raise DatabaseUnavailable(f"database error: {describe_error(error)}") from None
            raise
        finally:
            with contextlib.suppress(Exception):
                await pool.release(conn, timeout=1.0)

    async def _run(self, budget: float, work: Callable[[Conn], Awaitable[T]]) -> T:
        async with self._connection(budget) as conn:
            async with asyncio.timeout(max(budget, 0.001)):
                return await work(conn)

    async def close(self) -> None:
        for task in list(self._retiring):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), timeout=5.0)
            self._pool.terminate()
            self._pool = None

    # -- start-up -----------------------------------------------------------------------

    async def migrate(self, budget: float = 30.0) -> int:
        """Apply migrations under the advisory lock; the version found. SchemaTooNew as is."""
        return await self._run(
            budget, lambda conn: schema.migrate(conn, self.schema, lock_timeout=budget)
        )

    async def probe(self, budget: float = 2.0) -> None:
        await self._run(budget, lambda conn: conn.fetchval("SELECT 1"))

    # -- one turn -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def turn(
        self, key: SessionKey, now: datetime, budget: float
    ) -> AsyncIterator[TurnTransaction]:
        """A transaction holding `key`'s row lock; commits when the block ends cleanly."""
        async with self._connection(budget) as conn:
            tx = conn.transaction()
            async with asyncio.timeout(max(budget, 0.001)):
                # The row lock's wait is bounded by this timeout (the query is cancelled
                # and the connection dropped), not lock_timeout: one round trip fewer.
                await tx.start()
                session = await self._lock_row(conn, key, now)
            yield TurnTransaction(self, conn, tx, session)

    async def _lock_row(self, conn: Conn, key: SessionKey, now: datetime) -> SessionRow:
        """Lock the session's row, creating it if needed. An existing session (the common
        case) costs one ``SELECT ... FOR UPDATE``, which writes no new row version; a new
        one is inserted, and if another replica inserted it first, locked as it stands."""
        args = (self.namespace, self.agent, key.client, key.session)
        while True:
            row = await conn.fetchrow(
                "SELECT id, turns, bytes FROM sessions WHERE namespace = $1 AND agent = $2 "
                "AND client = $3 AND session = $4 FOR UPDATE",
                *args,
            )
            if row is not None:
                return SessionRow(row["id"], row["turns"], row["bytes"])
            row = await conn.fetchrow(
                "INSERT INTO sessions (namespace, agent, client, session, created_at, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $5) "
                "ON CONFLICT (namespace, agent, client, session) DO NOTHING RETURNING id",
                *args,
                now,
            )
            if row is not None:  # ours, and locked by the insert until the commit
                return SessionRow(row["id"], 0, 0, created=True)

    async def append_turn(
        self, key: SessionKey, expected: tuple[int, int] | None, row: TurnRow, budget: float
    ) -> int | None:
        """Append turn ``expected turns + 1`` in one autocommitted statement, if the session
        still stands where the caller read it: `expected` = (id, turns), or None for a
        session that did not exist. The session's id once the row has committed (durable
        when this returns); None when another turn or a delete came first, and nothing
        changed.

        Two turns racing on one session both reach the ``UPDATE``: the second waits for the
        first's row lock, then finds ``turns`` moved on and updates nothing, so its
        ``INSERT`` inserts nothing (for a new session the second ``INSERT ... ON CONFLICT``
        does nothing). No transaction is open while the model answers.
        """
        if expected is None:
            new_session = (
                _NEW_SESSION_TURN,
                *self._owner(key),
                row.key_id,
                row.sealed,
                row.size,
                row.at,
            )
            return await self._run(budget, lambda conn: conn.fetchval(*new_session))
        next_turn = _next_turn_args(expected, row)
        return await self._run(budget, lambda conn: conn.fetchval(_NEXT_TURN, *next_turn))

    # -- reads and deletes --------------------------------------------------------------

    async def read(
        self, key: SessionKey, after: tuple[int, int] | None, budget: float
    ) -> tuple[SessionRow, list[tuple[int, bytes]]] | None:
        """The session row and its turns after `after` = (id, turns) when that id still
        holds the session, else all of them; None when there is no such session. Each
        statement reads the row and the turns from one snapshot. A cached session (the
        common case) is found by its primary key in one statement; a second, by the
        session's name, only when the id no longer holds it (deleted, or re-created)."""
        deadline = asyncio.get_running_loop().time() + budget
        owner = self._owner(key)
        if after is not None:
            by_id = (_READ_BY_ID, *after, *owner)
            records = await self._run(budget, lambda conn: conn.fetch(*by_id))
            if records:
                return _session_and_turns(records)
            budget = deadline - asyncio.get_running_loop().time()
        records = await self._run(budget, lambda conn: conn.fetch(_READ_BY_KEY, *owner))
        return _session_and_turns(records) if records else None

    def _owner(self, key: SessionKey) -> tuple[str, str, str, str]:
        return self.namespace, self.agent, key.client, key.session

    async def delete(self, key: SessionKey, budget: float) -> bool:
        """Delete the session and (by cascade) its turns; False if there was none. Waits
        for a turn in progress on it (its row lock), within `budget`."""

        async def work(conn: Conn) -> str:
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('lock_timeout', $1, true)",
                    f"{max(int(budget * 1000), 1)}ms",
                )
                status: str = await conn.execute(
                    "DELETE FROM sessions WHERE namespace = $1 AND agent = $2 "
                    "AND client = $3 AND session = $4",
                    self.namespace,
                    self.agent,
                    key.client,
                    key.session,
                )
                return status

        return await self._run(budget, work) != "DELETE 0"

    async def expire(self, cutoff: datetime, batch: int, budget: float) -> list[SessionKey]:
        """Delete up to `batch` sessions whose last turn is older than `cutoff` (by up to
        ``IDLE_TIME_RESOLUTION`` more, never less); sessions locked by a turn in progress
        are skipped (they are not idle)."""
        cutoff -= IDLE_TIME_RESOLUTION

        async def work(conn: Conn) -> list[asyncpg.Record]:
            return await conn.fetch(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "
                "WHERE namespace = $1 AND agent = $2 AND updated_at < $3 "
                "ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED) "
                "RETURNING client, session",
                self.namespace,
                self.agent,
                cutoff,
                batch,
            )

        records = await self._run(budget, work)
        return [SessionKey(r["client"], r["session"]) for r in records]

    async def stats(self, active_key_id: str, budget: float) -> StoreStats:
        async def work(conn: Conn) -> StoreStats:
            sessions = await conn.fetchval(
                "SELECT count(*) FROM sessions WHERE namespace = $1 AND agent = $2",
                self.namespace,
                self.agent,
            )
            old = await conn.fetchval(
                "SELECT count(*) FROM turns t JOIN sessions s ON s.id = t.session_id "
                "WHERE s.namespace = $1 AND s.agent = $2 AND t.key_id <> $3",
                self.namespace,
                self.agent,
                active_key_id,
            )
            return StoreStats(int(sessions), int(old))

        return await self._run(budget, work)

    async def reencrypt(
        self,
        active_key_id: str,
        reseal: Callable[[SessionKey, int, bytes], bytes],
        batch: int,
        budget: float,
    ) -> int:
        """Re-seal up to `batch` rows under old keys with the active key; how many. Rows a
        concurrent pass holds are skipped; a turn in progress never touches old rows."""

        async def work(conn: Conn) -> int:
            async with conn.transaction():
                records = await conn.fetch(
                    "SELECT t.session_id, t.turn, t.sealed, s.client, s.session "
                    "FROM turns t JOIN sessions s ON s.id = t.session_id "
                    "WHERE s.namespace = $1 AND s.agent = $2 AND t.key_id <> $3 "
                    "LIMIT $4 FOR UPDATE OF t SKIP LOCKED",
                    self.namespace,
                    self.agent,
                    active_key_id,
                    batch,
                )
                updates = [
                    (
                        r["session_id"],
                        r["turn"],
                        reseal(SessionKey(r["client"], r["session"]), r["turn"], r["sealed"]),
                        active_key_id,
                    )
                    for r in records
                ]
                await conn.executemany(
                    "UPDATE turns SET sealed = $3, key_id = $4 WHERE session_id = $1 AND turn = $2",
                    updates,
                )
                return len(updates)

        return await self._run(budget, work)


def _next_turn_args(expected: tuple[int, int], row: TurnRow) -> tuple[Any, ...]:
    """``_NEXT_TURN``'s parameters: append after `expected` = (id, turns)."""
    return (*expected, row.key_id, row.sealed, row.size, row.at, IDLE_TIME_RESOLUTION)


def _session_and_turns(
    records: list[asyncpg.Record],
) -> tuple[SessionRow, list[tuple[int, bytes]]]:
    first = records[0]
    row = SessionRow(first["id"], first["turns"], first["bytes"])
    return row, [(r["turn"], bytes(r["sealed"])) for r in records if r["turn"] is not None]


class TurnTransaction:
    """The open transaction of one turn: read the turns after a point, insert the next."""

    def __init__(
        self,
        store: PostgresStore,
        conn: Conn,
        tx: Any,
        session: SessionRow,
    ) -> None:
        self._store = store
        self._conn = conn
        self._tx = tx
        self.session = session

    async def turns_after(self, turn: int, budget: float) -> list[tuple[int, bytes]]:
        records = await self._conn.fetch(
            "SELECT turn, sealed FROM turns WHERE session_id = $1 AND turn > $2 ORDER BY turn",
            self.session.id,
            turn,
            timeout=max(budget, 0.001),
        )
        return [(r["turn"], bytes(r["sealed"])) for r in records]

    async def commit_turn(self, row: TurnRow, budget: float) -> None:
        """Append the next turn with the optimistic path's statement (the row lock makes
        it apply) and commit: durable when this returns."""
        async with asyncio.timeout(max(budget, 0.001)):
            expected = (self.session.id, self.session.turns)
            if await self._conn.fetchval(_NEXT_TURN, *_next_turn_args(expected, row)) is None:
                raise StateError(f"session row {self.session.id} moved under its own lock")
            await self._tx.commit()

    async def rollback(self, budget: float = 2.0) -> None:
        async with asyncio.timeout(budget):
            await self._tx.rollback()

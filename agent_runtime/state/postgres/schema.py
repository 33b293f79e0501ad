"""Versioned schema migrations, applied at start-up under a transaction-scoped advisory lock.

Replicas that start together each open a transaction and take
``pg_advisory_xact_lock`` on a number derived from the schema name before they look at
anything: the first one creates or upgrades the tables, the others then find the version
current and do nothing. DDL is transactional in PostgreSQL, so a migration that fails
leaves nothing half-applied. A database whose version is newer than this code knows is
refused with ``SchemaTooNew`` (the runtime stays up, unready, naming the versions): an
older runtime must not write rows a newer one has to understand.

Tables (clear columns, each justified in docs/state-and-encryption.md):

- ``sessions``: one row per (namespace, agent, client, session) with a numeric ``id``,
  the turn count, the UTF-8 byte count of the messages, and creation/last-turn times.
  Its ``turns`` serializes turns: an optimistic append applies only while it is unchanged,
  and a streamed or tool turn locks the row ``FOR UPDATE`` for its length.
- ``turns``: one row per turn: session ``id``, turn number, key id, and the sealed
  messages. Deleting the session deletes its turns (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
"""A connection lent by the pool (what every query here runs on)."""

SCHEMA_VERSION = 2

# Each entry takes the schema from the version before it to its index + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE sessions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            namespace text NOT NULL,
            agent text NOT NULL,
            client text NOT NULL,
            session text NOT NULL,
            turns integer NOT NULL DEFAULT 0,
            bytes bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            UNIQUE (namespace, agent, client, session)
        )""",
        "CREATE INDEX sessions_idle ON sessions (namespace, agent, updated_at)",
        """CREATE TABLE turns (
            session_id bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            turn integer NOT NULL CHECK (turn > 0),
            key_id text NOT NULL,
            sealed bytea NOT NULL,
            created_at timestamptz NOT NULL,
            PRIMARY KEY (session_id, turn)
        )""",
        "CREATE INDEX turns_key_id ON turns (key_id)",
    ),
    (
        # Room in each page for the turn count's in-place (HOT) updates: a turn changes no
        # indexed column of its session's row (updated_at moves once a minute at most).
        "ALTER TABLE sessions SET (fillfactor = 70)",
        # Led by (namespace, agent), this index looked as good as the unique key to the
        # planner for a lookup by session name (both "one row" on fresh statistics) and
        # was picked, then filtered every session of the agent. Led by the time, it only
        # serves expiry, which is a range of it.
        "DROP INDEX sessions_idle",
        "CREATE INDEX sessions_idle ON sessions (updated_at, namespace, agent)",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


class SchemaTooNew(Exception):
    """The database was migrated by a newer runtime; this one must not write to it."""


def _quoted(schema: str) -> str:
    # The setting's pattern allows [a-z0-9_] only; quoting keeps it one identifier anyway.
    return '"' + schema.replace('"', '""') + '"'


async def migrate(conn: Conn, schema: str, *, lock_timeout: float) -> int:
    """Bring `schema` to SCHEMA_VERSION; return the version found before. The connection's
    search_path must name `schema` (the pool sets it)."""
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('lock_timeout', $1, true)", f"{int(lock_timeout * 1000)}ms"
        )
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('agentry-migrate:' || $1, 0))",
            schema,
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
        await conn.execute(f"SET LOCAL search_path TO {_quoted(schema)}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)"
        )
        found = await conn.fetchval("SELECT version FROM schema_version")
        current = int(found) if found is not None else 0
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"schema {schema!r} is at version {current}, newer than this runtime knows "
                f"({SCHEMA_VERSION}); run a runtime at least as new as the one that migrated it"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_version (one, version) VALUES (true, $1) "
            "ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
            SCHEMA_VERSION,
        )
        return current

"""The shared PostgreSQL store: any replica serves any session (issue 8).

``schema`` migrates the tables at start under an advisory lock, ``rows`` seals and opens
one turn's row, ``store`` runs the SQL with every wait bounded, and
``agent_runtime.shared_sessions`` puts them behind the ``SessionService`` API.
"""

from agent_runtime.state.postgres.schema import SCHEMA_VERSION, SchemaTooNew
from agent_runtime.state.postgres.store import PostgresStore, StoreStats

__all__ = ["SCHEMA_VERSION", "PostgresStore", "SchemaTooNew", "StoreStats"]

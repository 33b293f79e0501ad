"""Agent specs shared by the operator and end-to-end tests.

Since issue 8 more than one replica needs the shared postgres backend; tests that are
about replicas, not about state, take `shared_state()` and a connection Secret.
"""

from __future__ import annotations

from typing import Any

CONNECTION_SECRET = "pg"
CONNECTION_KEY = "uri"


def shared_state(secret: str = CONNECTION_SECRET, key: str = CONNECTION_KEY) -> dict[str, Any]:
    """spec.state for the postgres backend, reading its URI from `secret`/`key`."""
    return {
        "backend": "postgres",
        "postgres": {"connectionSecretRef": {"name": secret, "key": key}},
    }


def connection_secret(
    namespace: str, uri: str, name: str = CONNECTION_SECRET, key: str = CONNECTION_KEY
) -> dict[str, Any]:
    """The Secret `shared_state()` names, holding `uri`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {key: uri},
    }

"""Agent manifests and specs shared by the operator, end-to-end and chaos tests.

Since issue 8 more than one replica needs the shared postgres backend; tests that are
about replicas, not about state, take `shared_state()` and a connection Secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

CONNECTION_SECRET = "pg"
CONNECTION_KEY = "uri"
API_VERSION = "agentry.dev/v1alpha1"


def agent_manifest(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An Agent object as a user writes it for `kubectl apply`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def apply_all(cluster: Any, items: Iterable[dict[str, Any]]) -> None:
    """Apply many objects with one kubectl call (one process, not one per object)."""
    listing = {"apiVersion": "v1", "kind": "List", "items": list(items)}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(listing))


def apply_agent(cluster: Any, name: str, namespace: str, spec: dict[str, Any]) -> None:
    """Create or update the Agent `namespace/name` with `spec`."""
    apply_all(cluster, [agent_manifest(name, namespace, spec)])


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

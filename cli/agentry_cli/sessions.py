"""Which replica a session lives on.

A session's memory is kept by one replica (its journal and checkpoints are that pod's),
so every turn of a session must reach the same pod. The home replica is a stable hash of
the session id over `spec.replicas`; any client can compute it the same way. Changing
`replicas` moves some sessions to a new home, where they start empty (their turns stay
in the old replica's state).
"""

from __future__ import annotations

import hashlib


def home_replica(session: str, replicas: int) -> int:
    """The ordinal of the StatefulSet pod that keeps `session` (0 when replicas < 2)."""
    if replicas < 2:
        return 0
    digest = hashlib.sha256(session.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % replicas

"""Where a sealed record belongs: the associated data of every envelope.

AES-GCM authenticates the associated data without storing it, so a checkpoint copied to
another agent, another replica or used as another kind of record fails authentication
instead of being silently accepted (the problem Kubernetes solves with the storage path
and Dapr's state encryption did not, see its issue #5998).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

_AAD_LABEL = b"agentry-aad-v1"


@lru_cache(maxsize=64)  # bounded: contexts are few, but never trust that
def _encode(namespace: str, agent: str, replica: str, kind: str) -> bytes:
    # A runtime seals under a handful of contexts (one per record kind), for every journal
    # entry: encoding each once saves the work on the request path.
    parts = [_AAD_LABEL]
    for value in (namespace, agent, replica, kind):
        raw = value.encode("utf-8")
        parts.append(len(raw).to_bytes(2, "big"))
        parts.append(raw)
    return b"".join(parts)


@dataclass(frozen=True)
class RecordContext:
    """The owner and kind of a record; `kind` is "" in a base context that stores derive from."""

    namespace: str
    agent: str
    replica: str
    kind: str

    def associated_data(self) -> bytes:
        """Encode the context unambiguously (each field length-prefixed), for use as AAD."""
        return _encode(self.namespace, self.agent, self.replica, self.kind)

    def with_kind(self, kind: str) -> RecordContext:
        """The same owner, another kind of record (stores call this on their base context)."""
        return RecordContext(self.namespace, self.agent, self.replica, kind)

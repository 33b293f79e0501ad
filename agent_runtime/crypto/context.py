"""Where a sealed record belongs: the associated data of every envelope.

AES-GCM authenticates the associated data without storing it, so a checkpoint copied to
another agent, another replica or used as another kind of record fails authentication
instead of being silently accepted (the problem Kubernetes solves with the storage path
and Dapr's state encryption did not, see its issue #5998).

Two encodings exist, and both stay readable forever (golden files in the tests):

- ``agentry-aad-v1``: namespace, agent, replica, kind. Whole checkpoints and journal
  records are sealed under it.
- ``agentry-aad-v2``: the same plus the owning client and the session id. The messages
  of one session are sealed under it inside those records, so a session's sealed body
  moved to another client's (or another session's) place fails authentication.
- ``agentry-aad-v3``: namespace, agent, kind, client, session and turn number, without
  the replica: one turn's row in the shared PostgreSQL store, which any replica writes and
  reads. A row copied to another session, or to another turn number, fails to open.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

_AAD_LABEL_V1 = b"agentry-aad-v1"
_AAD_LABEL_V2 = b"agentry-aad-v2"
_AAD_LABEL_V3 = b"agentry-aad-v3"


def _length_prefixed(label: bytes, values: tuple[str, ...]) -> bytes:
    parts = [label]
    for value in values:
        raw = value.encode("utf-8")
        parts.append(len(raw).to_bytes(2, "big"))
        parts.append(raw)
    return b"".join(parts)


@lru_cache(maxsize=64)  # bounded: contexts are few, but never trust that
def _encode_v1(namespace: str, agent: str, replica: str, kind: str) -> bytes:
    # A runtime seals under a handful of contexts (one per record kind), for every journal
    # entry: encoding each once saves the work on the request path.
    return _length_prefixed(_AAD_LABEL_V1, (namespace, agent, replica, kind))


@lru_cache(maxsize=64)
def _v2_prefix(namespace: str, agent: str, replica: str, kind: str) -> bytes:
    # A checkpoint seals one body per session: only client and session differ between them.
    return _length_prefixed(_AAD_LABEL_V2, (namespace, agent, replica, kind))


@dataclass(frozen=True)
class RecordContext:
    """The owner and kind of a record; `kind` is "" in a base context that stores derive from.

    `client` and `session` are set only for a session's sealed body (version 2 AAD);
    records that hold several sessions leave them ``None`` (version 1 AAD).
    """

    namespace: str
    agent: str
    replica: str
    kind: str
    client: str | None = None
    session: str | None = None
    turn: int | None = None

    def associated_data(self) -> bytes:
        """Encode the context unambiguously (each field length-prefixed), for use as AAD."""
        if self.turn is not None and self.client is not None and self.session is not None:
            return _length_prefixed(
                _AAD_LABEL_V3,
                (self.namespace, self.agent, self.kind, self.client, self.session, str(self.turn)),
            )
        if self.client is None or self.session is None:
            return _encode_v1(self.namespace, self.agent, self.replica, self.kind)
        prefix = _v2_prefix(self.namespace, self.agent, self.replica, self.kind)
        return _length_prefixed(prefix, (self.client, self.session))

    def with_kind(self, kind: str) -> RecordContext:
        """The same owner, another kind of record (stores call this on their base context)."""
        return replace(self, kind=kind)

    def for_session(self, kind: str, client: str, session: str) -> RecordContext:
        """The context of one session's sealed body: this replica, that client and session."""
        return RecordContext(self.namespace, self.agent, self.replica, kind, client, session)

    def for_turn(self, kind: str, client: str, session: str, turn: int) -> RecordContext:
        """The context of one turn's row in a shared store: no replica, the turn number."""
        return RecordContext(self.namespace, self.agent, "", kind, client, session, turn)

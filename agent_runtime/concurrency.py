"""Requests in flight per client, capped at ``MAX_CONCURRENT_PER_CLIENT``.

``MAX_CONCURRENT`` protects the replica; this cap keeps one client from holding all of
it (or many connections whose bodies trickle in). A client's count covers its requests
from admission by the rate limiter until the response, body read included. The table
holds only clients with a request in flight, so it is bounded by the open connections.
Called by ``middleware/limits.py``; the client key is the rate limiter's.
"""

from __future__ import annotations


class ClientSlots:
    """How many requests each client has in flight, against a per-client cap."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._held: dict[str, int] = {}

    @property
    def tracked_clients(self) -> int:
        return len(self._held)

    def take(self, client: str) -> bool:
        """Count one more request of ``client``; False (and nothing counted) at the cap."""
        held = self._held.get(client, 0)
        if held >= self.per_client:
            return False
        self._held[client] = held + 1
        return True

    def release(self, client: str) -> None:
        """One request of ``client`` is done; the client is forgotten at zero."""
        held = self._held.pop(client) - 1
        if held:
            self._held[client] = held

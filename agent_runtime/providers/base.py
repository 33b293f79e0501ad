"""The ``ModelProvider`` protocol every provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

ChatTurn = Mapping[str, str]
"""One message of a conversation: ``{"role": "system"|"user"|"assistant", "content": str}``.

A ``system`` message, when present, comes first: the Agent's instructions. It is sent to
the model on every turn and never stored in the session."""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    degraded: bool = False


class ModelProvider(Protocol):
    name: str

    async def start(self) -> None:
        """Open connections; called once before the first ``complete``."""

    async def close(self) -> None:
        """Release connections."""

    async def complete(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> str:
        """The assistant's next message; raises ``ModelError`` on failure.

        ``deadline`` is the event-loop time by which the request needs its answer: retries
        and backoff stop there (the guard gives up at that time whatever the provider does).
        """

    async def check_credentials(self) -> str | None:
        """``None`` when the API key is accepted (or none is needed), else a short reason."""


class StreamingProvider(ModelProvider, Protocol):
    """A provider that can hand out its reply piece by piece as the model produces it."""

    def stream(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> AsyncIterator[str]:
        """The reply's text in pieces; raises ``ModelError`` (before or between pieces)."""

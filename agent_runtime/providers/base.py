"""The ``ModelProvider`` protocol every provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ChatTurn = Mapping[str, str]
"""One message of a conversation: ``{"role": "system"|"user"|"assistant", "content": str}``.

A ``system`` message, when present, comes first: the Agent's instructions. It is sent to
the model on every turn and never stored in the session."""


CHARS_PER_TOKEN = 4
"""The estimate where a provider reports no usage (builtin): about four characters a
token, the rule of thumb for English text with the common BPE tokenizers."""


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)  # ceiling division


def estimate_conversation_tokens(conversation: Sequence[ChatTurn]) -> int:
    """``estimate_tokens`` of each message's content, summed: the prompt's estimate.

    A session's whole history is the prompt of each of its turns, so this runs over every
    message on every turn: one loop with the ceiling inline takes about half the time of a
    generator calling ``estimate_tokens`` per message (and a ``map`` over
    ``operator.methodcaller`` is slower still).
    """
    tokens = 0
    for turn in conversation:
        tokens += -(-len(turn.get("content", "")) // CHARS_PER_TOKEN)
    return tokens


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one model call or one turn; ``estimated`` when no provider counted them."""

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
        )


NO_USAGE = TokenUsage()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A tool offered to the model, as chat completions' ``tools[].function`` describes it."""

    name: str
    description: str
    parameters: Mapping[str, Any]


Conversation = Sequence[ChatTurn]
Tools = Sequence[FunctionTool]


@dataclass(frozen=True, slots=True)
class Completion:
    """One model call's answer: text, the tool calls it asks for, and its usage if known."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    degraded: bool = False
    usage: TokenUsage = NO_USAGE
    """Every model call of the turn summed (0 for a fallback reply: nothing was billed)."""
    tool_record: str = ""
    """JSON list of the turn's tool calls and results, stored with the answer; empty
    without tool calls."""


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


class ToolCallingProvider(ModelProvider, Protocol):
    """A provider that can offer tools to the model and report token usage."""

    async def complete_with_tools(
        self, conversation: Conversation, tools: Tools, *, deadline: float | None = None
    ) -> Completion:
        """The next message, tool calls included; ``tools`` may be empty. Conversation
        messages may carry ``tool_calls`` (assistant; JSON text), ``tool_call_id`` (role
        ``tool``) and ``tools`` (a stored turn's record, see ``tools/record.py``)."""


class StreamingProvider(ModelProvider, Protocol):
    """A provider that can hand out its reply piece by piece as the model produces it."""

    def stream(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> AsyncIterator[str | TokenUsage]:
        """The reply's text in pieces; raises ``ModelError`` (before or between pieces).
        A ``TokenUsage`` may come last: the provider's count of the call."""

"""The one turn pipeline behind every surface: native, OpenAI-compatible and A2A.

A request reaches a handler through the middlewares (``middleware/guard.py``: auth →
rate limit → the client's slot → body → replica concurrency); the handler parses its own
protocol's shape and hands the caller, session and text to ``Turns``, which runs the rest:
the session's lock → its memory → the model (with the Agent's instructions as the system
message, streamed or not) → the journal → the reply. The surfaces only translate; none of
them touches sessions or the model directly, so a limit, the degradation rules or the
memory behave the same whichever protocol a client speaks.

A stateless turn (an OpenAI call without ``X-Session-ID``) skips the lock, memory and
journal: the request's messages are the whole conversation.

``usage`` is the turn's token count: the provider's ``usage`` summed over every model
call of the turn (tool steps included), or the estimate of ``providers/base.py`` (about
four characters a token) where the provider reports none (builtin). It is also added to
the request's token reservation (``token_budget.py``) when a budget is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent_runtime.errors import SessionNotFound
from agent_runtime.profile import ProfileSource
from agent_runtime.providers.base import ChatTurn, TokenUsage
from agent_runtime.providers.guarded import GuardedModel, OnDelta
from agent_runtime.sessions import SessionService
from agent_runtime.shared_sessions import SharedSessionService
from agent_runtime.token_budget import record_turn_tokens
from agent_runtime.tools.loop import OnToolEvent


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, usage: TokenUsage) -> Usage:
        record_turn_tokens(usage.total)
        return cls(usage.input_tokens, usage.output_tokens)


@dataclass(frozen=True, slots=True)
class Outcome:
    reply: str
    degraded: bool
    usage: Usage
    turn: int | None = None
    """The turn's number in its session; None for a stateless turn."""


class Turns:
    def __init__(
        self,
        sessions: SessionService | SharedSessionService,
        model: GuardedModel,
        profile: ProfileSource,
    ):
        self.sessions = sessions
        self.model = model
        self.profile = profile

    async def in_session(
        self,
        client: str,
        session_id: str,
        content: str,
        *,
        on_delta: OnDelta | None = None,
        on_event: OnToolEvent | None = None,
    ) -> Outcome:
        """One turn of ``client``'s session: remembered, journaled, then answered."""
        system = self.profile.current().instructions
        result = await self.sessions.post(
            client, session_id, content, system=system, on_delta=on_delta, on_event=on_event
        )
        return Outcome(result.reply, result.degraded, Usage.of(result.usage), result.turn)

    async def stateless(
        self,
        conversation: Sequence[ChatTurn],
        *,
        on_delta: OnDelta | None = None,
        on_event: OnToolEvent | None = None,
    ) -> Outcome:
        """A reply to ``conversation`` alone; nothing is stored."""
        system = self.profile.current().instructions
        lead: list[ChatTurn] = [{"role": "system", "content": system}] if system else []
        reply = await self.model.reply([*lead, *conversation], on_delta=on_delta, on_event=on_event)
        return Outcome(reply.text, reply.degraded, Usage.of(reply.usage))

    async def session_turn(self, client: str, session_id: str, turn: int) -> tuple[str, str] | None:
        """(question, answer) of turn ``turn`` of ``client``'s session, if it is stored."""
        try:
            messages = await self.sessions.get(client, session_id)
        except SessionNotFound:
            return None
        if turn < 1 or 2 * turn > len(messages):
            return None
        question, answer = messages[2 * turn - 2], messages[2 * turn - 1]
        return question["content"], answer["content"]

    async def next_turn(self, client: str, session_id: str) -> int:
        """The number the session's next turn gets (read under its lock, it is this turn's)."""
        try:
            return len(await self.sessions.get(client, session_id)) // 2 + 1
        except SessionNotFound:
            return 1

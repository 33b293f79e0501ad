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

``usage`` is an estimate (about four characters a token) for the OpenAI surface's
``usage`` field: the runtime has no tokenizer for whatever model is behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent_runtime.errors import SessionNotFound
from agent_runtime.profile import ProfileSource
from agent_runtime.providers.base import ChatTurn
from agent_runtime.providers.guarded import GuardedModel, OnDelta
from agent_runtime.sessions import SessionService
from agent_runtime.shared_sessions import SharedSessionService

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)  # ceiling division


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_NOT_COUNTED = Usage(0, 0)


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
        count_usage: bool = False,
    ) -> Outcome:
        """One turn of ``client``'s session: remembered, journaled, then answered.

        ``count_usage`` (the OpenAI surface) estimates the prompt from the session as it
        was sent, which costs a read of the session; the other surfaces skip it.
        """
        system = self.profile.current().instructions
        result = await self.sessions.post(
            client, session_id, content, system=system, on_delta=on_delta
        )
        usage = _NOT_COUNTED
        if count_usage:
            prompt = estimate_tokens(system) + sum(
                estimate_tokens(m["content"]) for m in result.conversation
            )
            usage = Usage(prompt, estimate_tokens(result.reply))
        return Outcome(result.reply, result.degraded, usage, result.turn)

    async def stateless(
        self, conversation: Sequence[ChatTurn], *, on_delta: OnDelta | None = None
    ) -> Outcome:
        """A reply to ``conversation`` alone; nothing is stored."""
        system = self.profile.current().instructions
        lead: list[ChatTurn] = [{"role": "system", "content": system}] if system else []
        sent = [*lead, *conversation]
        reply = await self.model.reply(sent, on_delta=on_delta)
        prompt = sum(estimate_tokens(t["content"]) for t in sent)
        return Outcome(reply.text, reply.degraded, Usage(prompt, estimate_tokens(reply.text)))

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

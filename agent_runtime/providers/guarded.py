"""The model as the session service sees it: provider + deadline + circuit breaker + fallback.

When the breaker allows, the provider answers; a failure is counted and the fallback
answers instead. ``builtin`` fallback replies are marked ``degraded``; ``reject`` raises
``ModelUnavailable`` with a Retry-After. Either way the pod stays ready: an outside
outage must not take every pod out of the Service.

Three rules keep one request's trouble from spreading:

- One deadline per request (``MODEL_TIMEOUT_SECONDS``), set when the request arrives and
  covering every attempt and backoff, so a hanging provider costs a caller at most that
  long, never attempts times the timeout. A request that waited past its deadline (for its
  session's lock) goes straight to the fallback without calling the provider.
- A refusal of this request's input (400/413/422, e.g. a history longer than the model's
  context) is answered 422 to that caller and never counted against the breaker.
- Anything else the provider does wrong, including an exception no one foresaw, is a
  model error: counted, measured, and answered by the fallback, never a 500.

With ``on_delta`` the reply is streamed: each piece goes to the callback as the provider
produces it (a provider without ``stream`` hands over its whole reply as one piece). A
failure before the first piece falls back as above, the fallback's reply then streamed as
one degraded piece; a failure after it is counted like any other and raised as
``ModelStreamBroken``, since the caller already holds part of the model's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Literal

from agent_runtime.circuit import CircuitBreaker
from agent_runtime.errors import (
    ModelError,
    ModelRefusal,
    ModelRefusedRequest,
    ModelStreamBroken,
    ModelUnavailable,
)
from agent_runtime.metrics import Metrics
from agent_runtime.providers.base import ChatTurn, ModelProvider, Reply
from agent_runtime.providers.builtin import respond

log = logging.getLogger("agent_runtime.model")

OnDelta = Callable[[str, bool], Awaitable[None]]
"""Receives each piece of a streamed reply and whether the reply is degraded."""


class GuardedModel:
    def __init__(
        self,
        provider: ModelProvider,
        breaker: CircuitBreaker,
        *,
        fallback: Literal["builtin", "reject"],
        metrics: Metrics,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.provider = provider
        self.breaker = breaker
        self.fallback = fallback
        self.timeout_seconds = timeout_seconds
        self._metrics = metrics
        # A provider that answers within the call, in this process (the builtin one), cannot
        # outlive a deadline: it is awaited directly, without a task and a timer per turn.
        self._in_process = getattr(provider, "in_process", False) is True

    def deadline(self) -> float:
        """The event-loop time by which a request arriving now must have its reply."""
        return _now() + self.timeout_seconds

    async def reply(
        self,
        conversation: Sequence[ChatTurn],
        *,
        deadline: float | None = None,
        on_delta: OnDelta | None = None,
    ) -> Reply:
        if deadline is None:
            deadline = self.deadline()
        if on_delta is not None:
            return await self._streamed(conversation, deadline, on_delta)
        if _before(deadline) and self.breaker.allow():
            try:
                text = await self._complete_before(conversation, deadline)
            except ModelRefusal as refusal:
                self.breaker.release()  # the provider answered: no verdict on its health
                self._metrics.model_errors.labels(refusal.kind).inc()
                raise ModelRefusedRequest(_refusal_message(refusal.status)) from None
            except ModelError as error:
                self._count_failure(error)
            except BaseException:
                self.breaker.release()
                raise
            else:
                self.breaker.record_success()
                return Reply(text)
        return self._fallback_reply(conversation)

    async def _streamed(
        self, conversation: Sequence[ChatTurn], deadline: float, on_delta: OnDelta
    ) -> Reply:
        """The reply, each piece handed to ``on_delta`` as it comes (module docstring)."""
        parts: list[str] = []
        if _before(deadline) and self.breaker.allow():
            try:
                async for piece in self._pieces_before(conversation, deadline):
                    parts.append(piece)
                    await on_delta(piece, False)
            except ModelRefusal as refusal:
                self.breaker.release()
                self._metrics.model_errors.labels(refusal.kind).inc()
                raise ModelRefusedRequest(_refusal_message(refusal.status)) from None
            except ModelError as error:
                self._count_failure(error)
                if parts:
                    raise ModelStreamBroken(
                        "the model stopped in the middle of its reply; nothing was stored, "
                        "send the message again"
                    ) from None
            except BaseException:  # the caller went away, or a cancellation
                self.breaker.release()
                raise
            else:
                self.breaker.record_success()
                return Reply("".join(parts))
        reply = self._fallback_reply(conversation)
        await on_delta(reply.text, True)
        return reply

    async def _pieces_before(
        self, conversation: Sequence[ChatTurn], deadline: float
    ) -> AsyncIterator[str]:
        """The provider's pieces, each awaited within the deadline; every failure a ModelError.

        The caller's own work between pieces (writing them out) is not guarded here, so a
        client that went away is not mistaken for a model failure.
        """
        stream = getattr(self.provider, "stream", None)
        if stream is None:
            yield await self._complete_before(conversation, deadline)
            return
        pieces: AsyncIterator[str] = stream(conversation, deadline=deadline)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        piece = await anext(pieces)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise ModelError("timeout", "no complete reply before the deadline") from None
                except ModelError:
                    raise
                except Exception as error:
                    raise ModelError(
                        "unexpected", f"provider stream raised {type(error).__name__}"
                    ) from None
                yield piece
        finally:
            closing = getattr(pieces, "aclose", None)
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing()

    async def _complete_before(self, conversation: Sequence[ChatTurn], deadline: float) -> str:
        """The provider's answer, or a ModelError for every way it can fail.

        The call runs as its own task so that the deadline holds even against a provider
        (or a library under it) that swallows a cancellation: the caller stops waiting at
        the deadline whatever the task does next.
        """
        if self._in_process:
            try:
                return await self.provider.complete(conversation, deadline=deadline)
            except ModelError:
                raise
            except Exception as error:
                raise ModelError("unexpected", f"provider raised {type(error).__name__}") from None
        call = asyncio.ensure_future(self.provider.complete(conversation, deadline=deadline))
        try:
            done, _ = await asyncio.wait({call}, timeout=deadline - _now())
        except BaseException:
            call.cancel()
            raise
        if not done:
            call.cancel()
            call.add_done_callback(_discard_outcome)
            raise ModelError("timeout", "no answer before the request deadline")
        try:
            return call.result()
        except ModelError:
            raise
        except Exception as error:  # a provider bug must fall back, not answer 500
            raise ModelError("unexpected", f"provider call raised {type(error).__name__}") from None

    def _count_failure(self, error: ModelError) -> None:
        self.breaker.record_failure()
        self._metrics.model_errors.labels(error.kind).inc()
        log.warning(
            "model call failed; using fallback",
            extra={"fields": {"kind": error.kind, "fallback": self.fallback}},
        )

    def _fallback_reply(self, conversation: Sequence[ChatTurn]) -> Reply:
        if self.fallback == "reject":
            raise ModelUnavailable(
                "the model is unavailable; try again later",
                retry_after=self.breaker.retry_after(),
            )
        return Reply(respond(conversation), degraded=True)


def _now() -> float:
    return asyncio.get_running_loop().time()


def _before(deadline: float) -> bool:
    return _now() < deadline


def _discard_outcome(call: asyncio.Future[str]) -> None:
    """Retrieve an abandoned call's outcome so asyncio does not log it as never retrieved."""
    if not call.cancelled():
        call.exception()


def _refusal_message(status: int) -> str:
    return (
        f"the model refused this request (provider answered {status}); the conversation "
        "may be longer than the model accepts: start a new session or delete this one"
    )

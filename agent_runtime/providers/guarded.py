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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal

from agent_runtime.circuit import CircuitBreaker
from agent_runtime.errors import ModelError, ModelRefusal, ModelRefusedRequest, ModelUnavailable
from agent_runtime.metrics import Metrics
from agent_runtime.providers.base import ChatTurn, ModelProvider, Reply
from agent_runtime.providers.builtin import respond

log = logging.getLogger("agent_runtime.model")


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

    def deadline(self) -> float:
        """The event-loop time by which a request arriving now must have its reply."""
        return _now() + self.timeout_seconds

    async def reply(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> Reply:
        if deadline is None:
            deadline = self.deadline()
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

    async def _complete_before(self, conversation: Sequence[ChatTurn], deadline: float) -> str:
        """The provider's answer, or a ModelError for every way it can fail.

        The call runs as its own task so that the deadline holds even against a provider
        (or a library under it) that swallows a cancellation: the caller stops waiting at
        the deadline whatever the task does next.
        """
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

"""The model as the session service sees it: provider + circuit breaker + fallback.

When the breaker allows, the provider answers; a failure is counted and the fallback
answers instead. ``builtin`` fallback replies are marked ``degraded``; ``reject`` raises
``ModelUnavailable`` with a Retry-After. Either way the pod stays ready: an outside
outage must not take every pod out of the Service.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from agent_runtime.circuit import CircuitBreaker
from agent_runtime.errors import ModelError, ModelUnavailable
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
    ) -> None:
        self.provider = provider
        self.breaker = breaker
        self.fallback = fallback
        self._metrics = metrics

    async def reply(self, conversation: Sequence[ChatTurn]) -> Reply:
        if self.breaker.allow():
            try:
                text = await self.provider.complete(conversation)
            except ModelError as error:
                self.breaker.record_failure()
                self._metrics.model_errors.labels(error.kind).inc()
                log.warning(
                    "model call failed; using fallback",
                    extra={"fields": {"kind": error.kind, "fallback": self.fallback}},
                )
            except BaseException:
                self.breaker.release()
                raise
            else:
                self.breaker.record_success()
                return Reply(text)
        if self.fallback == "reject":
            raise ModelUnavailable(
                "the model is unavailable; try again later",
                retry_after=self.breaker.retry_after(),
            )
        return Reply(respond(conversation), degraded=True)

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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal

from agent_runtime.circuit import CircuitBreaker
from agent_runtime.errors import (
    ModelError,
    ModelRefusal,
    ModelRefusedRequest,
    ModelStreamBroken,
    ModelUnavailable,
)
from agent_runtime.metrics import Metrics
from agent_runtime.providers.base import (
    NO_USAGE,
    ChatTurn,
    Completion,
    FunctionTool,
    ModelProvider,
    Reply,
    TokenUsage,
    estimate_conversation_tokens,
    estimate_tokens,
)
from agent_runtime.providers.builtin import respond
from agent_runtime.tools.loop import OnToolEvent, ToolPolicy, run_tool_loop

if TYPE_CHECKING:  # the MCP SDK is imported only by an Agent that has tools
    from agent_runtime.tools.toolbox import Toolbox

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
        toolbox: Toolbox | None = None,
        tool_policy: ToolPolicy | None = None,
    ) -> None:
        self.provider = provider
        self.breaker = breaker
        self.fallback = fallback
        self.timeout_seconds = timeout_seconds
        self._metrics = metrics
        # A provider that answers within the call, in this process (the builtin one), cannot
        # outlive a deadline: it is awaited directly, without a task and a timer per turn.
        self._in_process = getattr(provider, "in_process", False) is True
        self.toolbox = toolbox or None  # an empty toolbox is none: the plain path
        self.tool_policy = tool_policy or ToolPolicy()
        self._with_tools = getattr(provider, "complete_with_tools", None)
        # A provider that counts tokens is asked through complete_with_tools even without
        # tools, to get its usage; the others keep the plain complete().
        self._usage_call = bool(getattr(provider, "reports_usage", False)) and bool(
            self._with_tools
        )

    def deadline(self) -> float:
        """The event-loop time by which a request arriving now must have its reply."""
        return _now() + self.timeout_seconds

    async def reply(
        self,
        conversation: Sequence[ChatTurn],
        *,
        deadline: float | None = None,
        on_delta: OnDelta | None = None,
        on_event: OnToolEvent | None = None,
    ) -> Reply:
        """The turn's reply; with tools, the tool loop's (``tools/loop.py``)."""
        if deadline is None:
            deadline = self.deadline()
        if self.toolbox is not None:
            return await run_tool_loop(
                self,
                self.toolbox,
                conversation,
                deadline=deadline,
                policy=self.tool_policy,
                on_delta=on_delta,
                on_event=on_event,
            )
        if on_delta is not None:
            return await self._streamed(conversation, deadline, on_delta)
        completion, degraded = await self.step(conversation, (), deadline)
        return Reply(completion.text, degraded, completion.usage or NO_USAGE)

    async def step(
        self,
        conversation: Sequence[ChatTurn],
        tools: Sequence[FunctionTool],
        deadline: float,
    ) -> tuple[Completion, bool]:
        """One model call offering ``tools``, and whether it came from the fallback (which
        asks for no tools and reports no usage: nothing was billed)."""
        if _before(deadline) and self.breaker.allow():
            try:
                completion = await self._complete_before(conversation, tools, deadline)
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
                return completion, False
        return Completion(self._fallback_reply(conversation).text), True

    async def _streamed(
        self, conversation: Sequence[ChatTurn], deadline: float, on_delta: OnDelta
    ) -> Reply:
        """The reply, each piece handed to ``on_delta`` as it comes (module docstring)."""
        parts: list[str] = []
        usage: TokenUsage | None = None
        if _before(deadline) and self.breaker.allow():
            started = time.perf_counter()
            try:
                async for piece in self._pieces_before(conversation, deadline):
                    if isinstance(piece, TokenUsage):
                        usage = piece
                        continue
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
                text = "".join(parts)
                usage = self._measured(conversation, text, usage, started)
                return Reply(text, usage=usage)
        reply = self._fallback_reply(conversation)
        await on_delta(reply.text, True)
        return reply

    async def _pieces_before(
        self, conversation: Sequence[ChatTurn], deadline: float
    ) -> AsyncIterator[str | TokenUsage]:
        """The provider's pieces, each awaited within the deadline; every failure a ModelError.

        The caller's own work between pieces (writing them out) is not guarded here, so a
        client that went away is not mistaken for a model failure.
        """
        stream = getattr(self.provider, "stream", None)
        if stream is None:
            completion = await self._complete_before(conversation, (), deadline)
            yield completion.text
            if completion.usage is not None:
                yield completion.usage
            return
        pieces: AsyncIterator[str | TokenUsage] = stream(conversation, deadline=deadline)
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

    async def _complete_before(
        self, conversation: Sequence[ChatTurn], tools: Sequence[FunctionTool], deadline: float
    ) -> Completion:
        """The provider's answer, with its usage (counted or estimated), or a ModelError for
        every way it can fail.

        The call runs as its own task so that the deadline holds even against a provider
        (or a library under it) that swallows a cancellation: the caller stops waiting at
        the deadline whatever the task does next.
        """
        started = time.perf_counter()
        if self._in_process:  # awaited here: it cannot outlive a deadline
            try:
                completion = await self._call(conversation, tools, deadline)
            except ModelError:
                raise
            except Exception as error:
                raise ModelError("unexpected", f"provider raised {type(error).__name__}") from None
        else:
            completion = await self._in_task(self._call(conversation, tools, deadline), deadline)
        usage = self._measured(conversation, completion.text, completion.usage, started)
        return Completion(completion.text, completion.tool_calls, usage)

    async def _in_task(self, work: Coroutine[Any, Any, Completion], deadline: float) -> Completion:
        """``work`` as its own task, given up at ``deadline`` (class docstring)."""
        call = asyncio.ensure_future(work)
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

    async def _call(
        self, conversation: Sequence[ChatTurn], tools: Sequence[FunctionTool], deadline: float
    ) -> Completion:
        if self._with_tools is not None and (tools or self._usage_call):
            completion: Completion = await self._with_tools(conversation, tools, deadline=deadline)
            return completion
        return Completion(await self.provider.complete(conversation, deadline=deadline))

    def _measured(
        self,
        conversation: Sequence[ChatTurn],
        text: str,
        usage: TokenUsage | None,
        started: float,
    ) -> TokenUsage:
        """The call's usage (the provider's, else estimated), recorded in the metrics."""
        if usage is None:
            prompt = estimate_conversation_tokens(conversation)
            usage = TokenUsage(prompt, estimate_tokens(text), estimated=True)
        self._metrics.observe_model_call(
            self.provider.name,
            usage.input_tokens,
            usage.output_tokens,
            time.perf_counter() - started,
        )
        return usage

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


def _discard_outcome(call: asyncio.Future[Completion]) -> None:
    """Retrieve an abandoned call's outcome so asyncio does not log it as never retrieved."""
    if not call.cancelled():
        call.exception()


def _refusal_message(status: int) -> str:
    return (
        f"the model refused this request (provider answered {status}); the conversation "
        "may be longer than the model accepts: start a new session or delete this one"
    )

"""An OpenAI-compatible chat completions client on aiohttp.

Transient failures (timeouts, connection errors, 429, 5xx) are retried up to
``max_retries`` times with full-jitter exponential backoff, and a ``Retry-After`` from the
provider is honoured (waiting that long, or giving up at once when it is longer than
``max_retry_after``). The request's overall deadline, attempts and backoff included, is
enforced one level up (``providers/guarded.py``); ``timeout_seconds`` only caps one
attempt. 400, 413 and 422 raise ``ModelRefusal``: that request's input was refused, the
provider is fine. Any answer that is not a chat completion (HTML with status 200, JSON
without ``choices``) is a ``bad_response`` ModelError like any other provider failure.
The API key is read from a file at start and sent only in the ``Authorization`` header;
it is never logged or put in an error message.

``complete_with_tools`` offers the Agent's tools as chat completions ``tools`` (type
``function``) and returns the message's ``tool_calls`` and the reply's ``usage``; the
runtime uses it for every call, so each turn is counted by the provider.

``stream`` asks for ``stream: true`` and yields the ``delta.content`` of each
``chat.completion.chunk`` (and the ``usage`` of a chunk that carries one; the request
does not ask for it with ``stream_options``, which not every compatible server
accepts). Attempts are retried as above until the first piece arrives; after that a
failure (the connection cut, a malformed chunk, no ``[DONE]``) is a ``stream_cut``
ModelError, since part of the reply already went to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from agent_runtime.errors import ModelError, ModelRefusal
from agent_runtime.providers.base import (
    ChatTurn,
    Completion,
    Conversation,
    FunctionTool,
    TokenUsage,
    ToolCall,
    Tools,
)
from agent_runtime.tools.loop import expand_record

log = logging.getLogger("agent_runtime.providers.openai")

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class OpenAIProvider:
    name = "openai"
    reports_usage = True

    def __init__(
        self,
        *,
        endpoint: str,
        model: str,
        api_key_file: Path | None,
        timeout_seconds: float,
        max_retries: int,
        base_backoff: float = 0.25,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.model = model
        self._key_file = api_key_file
        self._timeout_seconds = timeout_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_retries = max_retries
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._rng = rng or random.SystemRandom()
        self._session: aiohttp.ClientSession | None = None
        self._key: str | None = None

    async def start(self) -> None:
        self._key = self._read_key()
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _read_key(self) -> str | None:
        if self._key_file is None:
            return None
        try:
            return self._key_file.read_text().strip() or None
        except OSError:
            return None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _body(
        self,
        conversation: Sequence[ChatTurn],
        *,
        stream: bool = False,
        tools: Sequence[FunctionTool] = (),
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": wire_messages(conversation)}
        if stream:
            body["stream"] = True
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in tools
            ]
        return body

    async def complete_with_tools(
        self, conversation: Conversation, tools: Tools, *, deadline: float | None = None
    ) -> Completion:
        """Like ``complete``, offering ``tools``; the answer's tool calls and usage kept."""
        body = self._body(conversation, tools=tools)
        payload = await self._retrying(lambda remaining: self._post(body, remaining), deadline)
        return completion_of(payload)

    async def complete(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> str:
        """Attempts until one answers, retries run out, or ``deadline`` (loop time) passes."""
        body = self._body(conversation)
        return await self._retrying(lambda remaining: self._attempt(body, remaining), deadline)

    async def stream(
        self, conversation: Sequence[ChatTurn], *, deadline: float | None = None
    ) -> AsyncIterator[str | TokenUsage]:
        """The reply in pieces; retried like ``complete`` until the first piece arrives."""
        body = self._body(conversation, stream=True)
        response = await self._retrying(lambda remaining: self._open(body, remaining), deadline)
        async with response:
            async for piece in stream_pieces(response):
                yield piece

    async def _retrying(
        self, attempt_once: Callable[[float], Awaitable[T]], deadline: float | None
    ) -> T:
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = math.inf  # called alone: only the per-attempt timeout applies
        attempt = 0
        while True:
            try:
                return await attempt_once(deadline - loop.time())
            except ModelError as error:
                delay = self._retry_delay(error, attempt, deadline - loop.time())
                if delay is None:
                    raise
                log.info(
                    "model call failed, retrying",
                    extra={
                        "fields": {
                            "kind": error.kind,
                            "attempt": attempt + 1,
                            "delay_seconds": round(delay, 3),
                        }
                    },
                )
                attempt += 1
                await self._sleep(delay)

    def _retry_delay(self, error: ModelError, attempt: int, remaining: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        retryable = error.kind in {"timeout", "connection", "rate_limited", "server"}
        if not retryable or attempt >= self.max_retries:
            return None
        delay = self._backoff(attempt)
        if error.retry_after is not None:
            if error.retry_after > self._max_retry_after:
                return None
            delay = error.retry_after
        return delay if delay < remaining else None  # no attempt could start in time

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform between 0 and the capped exponential step."""
        return self._rng.uniform(0, min(self._max_backoff, self._base_backoff * 2**attempt))

    async def _attempt(self, body: dict[str, Any], remaining: float) -> str:
        return reply_content(await self._post(body, remaining))

    async def _post(self, body: dict[str, Any], remaining: float) -> Any:
        """One attempt's JSON answer (status checked)."""
        if self._session is None:
            raise ModelError("connection", "provider not started")
        if remaining <= 0:
            raise ModelError("timeout", "no time left before the request deadline")
        url = f"{self.endpoint}/chat/completions"
        timeout = aiohttp.ClientTimeout(total=min(self._timeout_seconds, remaining))
        try:
            with _transport_errors():
                async with self._session.post(
                    url, json=body, headers=self._headers(), timeout=timeout
                ) as response:
                    raise_for_status(response)
                    payload = await response.json(content_type=None)
        except ValueError:  # HTML from a proxy, a truncated body: not the API's answer
            raise ModelError("bad_response", "provider reply is not JSON") from None
        return payload

    async def _open(self, body: dict[str, Any], remaining: float) -> aiohttp.ClientResponse:
        """A streaming response whose status is fine; the caller reads and releases it."""
        if self._session is None:
            raise ModelError("connection", "provider not started")
        if remaining <= 0:
            raise ModelError("timeout", "no time left before the request deadline")
        url = f"{self.endpoint}/chat/completions"
        # The whole stream may take the request's time; only connecting is capped per attempt.
        timeout = aiohttp.ClientTimeout(
            total=remaining, sock_connect=min(self._timeout_seconds, remaining)
        )
        with _transport_errors():
            response = await self._session.post(
                url, json=body, headers=self._headers(), timeout=timeout
            )
        try:
            raise_for_status(response)
        except BaseException:
            response.release()
            raise
        return response

    async def check_credentials(self) -> str | None:
        """Ask ``GET /models`` whether the key is accepted; outages do not count as invalid."""
        self._key = self._read_key()
        if self._key is None:
            return "API key file missing or empty"
        if self._session is None:
            return None
        try:
            async with self._session.get(
                f"{self.endpoint}/models", headers=self._headers()
            ) as response:
                if response.status in (401, 403):
                    return f"API key rejected by provider ({response.status})"
                return None
        except (TimeoutError, aiohttp.ClientError):
            return None


@contextlib.contextmanager
def _transport_errors() -> Iterator[None]:
    """A timeout or a connection failure of one attempt, as the retryable ModelError."""
    try:
        yield
    except TimeoutError:
        raise ModelError("timeout", "provider did not answer in time") from None
    except aiohttp.ClientError as error:
        raise ModelError("connection", f"provider unreachable ({type(error).__name__})") from None


REQUEST_SPECIFIC_STATUSES = frozenset({400, 413, 422})
"""Answers about this request's input (e.g. context too long), not about the provider."""


def raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Map an error status to the ModelError that decides retry, breaker and fallback."""
    status = response.status
    if status < 400:
        return
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        raise ModelError("rate_limited", "provider rate limited the call", retry_after=retry_after)
    if status >= 500:
        raise ModelError("server", f"provider answered {status}", retry_after=retry_after)
    if status in (401, 403):
        raise ModelError("auth", f"provider refused the API key ({status})")
    if status in REQUEST_SPECIFIC_STATUSES:
        raise ModelRefusal(status)
    raise ModelError("request", f"provider answered {status}")


def reply_content(payload: Any) -> str:
    """The assistant's text from a chat completion, or a ``bad_response`` ModelError."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ModelError("bad_response", "provider reply had no choices[0].message") from None
    if not isinstance(content, str):
        raise ModelError("bad_response", "provider reply content is not a string")
    return content


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


async def stream_pieces(response: aiohttp.ClientResponse) -> AsyncIterator[str | TokenUsage]:
    """The ``delta.content`` pieces of an SSE chat completion stream, up to ``[DONE]``;
    the ``usage`` of a chunk that has one (sent last by providers that count) too."""
    try:
        async for raw in response.content:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            piece = chunk_content(chunk)
            if piece:
                yield piece
            usage = usage_of(chunk)
            if usage is not None:
                yield usage
    except TimeoutError:
        raise ModelError("stream_cut", "provider stream stopped before the deadline") from None
    except (aiohttp.ClientError, ValueError) as error:
        raise ModelError("stream_cut", f"provider stream broke ({type(error).__name__})") from None
    raise ModelError("stream_cut", "provider stream ended without [DONE]")


def chunk_content(payload: Any) -> str:
    """The text of one ``chat.completion.chunk`` (empty for a role-only or final chunk)."""
    try:
        choices = payload["choices"]
        if not choices:
            return ""  # the usage chunk some providers send last
        content = choices[0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelError("stream_cut", "provider chunk had no choices[0].delta") from None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise ModelError("stream_cut", "provider chunk content is not a string")
    return content


def completion_of(payload: Any) -> Completion:
    """Text, tool calls and usage of a chat completion; ``bad_response`` when malformed."""
    try:
        message = payload["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        content = message.get("content")
        if content is None and calls:
            content = ""  # a message that only asks for tools
        tool_calls = tuple(
            ToolCall(
                str(call.get("id") or f"call_{index + 1}"),
                str(call["function"]["name"]),
                str(call["function"].get("arguments") or ""),
            )
            for index, call in enumerate(calls)
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelError("bad_response", "provider reply had no choices[0].message") from None
    if not isinstance(content, str):
        raise ModelError("bad_response", "provider reply content is not a string")
    return Completion(content, tool_calls, usage_of(payload))


def usage_of(payload: Any) -> TokenUsage | None:
    """The provider's ``usage`` (prompt and completion tokens), if it sent one."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return TokenUsage(prompt, completion)


def wire_messages(conversation: Sequence[ChatTurn]) -> list[dict[str, Any]]:
    """The conversation as chat completions messages: a stored turn's tool record becomes
    the assistant's tool calls and the tool messages before its answer."""
    messages: list[dict[str, Any]] = []
    for turn in conversation:
        role, content = turn["role"], turn["content"]
        if role == "assistant" and turn.get("tools"):
            messages.extend(wire_messages(expand_record(turn["tools"])))
        if role == "assistant" and turn.get("tool_calls"):
            calls = json.loads(turn["tool_calls"])
            messages.append(
                {
                    "role": "assistant",
                    "content": content or None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
        elif role == "tool":
            messages.append(
                {"role": "tool", "tool_call_id": turn.get("tool_call_id", ""), "content": content}
            )
        else:
            messages.append({"role": role, "content": content})
    return messages

"""A real local HTTP server speaking the OpenAI chat completions API, with injected faults.

Tests script it: ``fail(n, status)`` answers the next n calls with ``status``,
``rate_limit(n, retry_after)`` with 429 + Retry-After, ``latency`` delays every answer,
``hang(n)`` holds the next n calls until released, ``answer(n, body, content_type)``
answers the next n calls 200 with a body that is not a chat completion (an HTML error
page from a proxy, JSON without ``choices``). A request with ``stream: true`` is answered
with SSE ``chat.completion.chunk`` objects, one word each, then ``data: [DONE]``;
``cut(n, after)`` ends the next n streams after ``after`` chunks, connection closed
without ``[DONE]``. It records every call it received and
which API key was presented, and answers ``GET /v1/models`` 401 for unknown keys.

``reply(message, usage)`` scripts the next non-streamed answer's ``message`` (say, one
with ``tool_calls``) and ``usage``; ``usage`` (a dict) adds a ``usage`` to every answer.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Call:
    path: str
    authorization: str | None
    body: dict[str, Any] | None


@dataclass
class FakeProvider:
    valid_keys: set[str] = field(default_factory=lambda: {"sk-test-valid"})
    latency: float = 0.0
    calls: list[Call] = field(default_factory=list)
    _faults: deque[tuple[str, Any]] = field(default_factory=deque)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None
    host: str = "127.0.0.1"  # end-to-end tests bind the cluster's host_ip
    port: int = 0  # 0 picks a free port; a fixed one lets a test restart the same endpoint
    usage: dict[str, int] | None = None
    _scripted: deque[tuple[dict[str, Any], dict[str, int] | None]] = field(default_factory=deque)

    def reply(self, message: dict[str, Any], usage: dict[str, int] | None = None) -> None:
        self._scripted.append((message, usage))

    def fail(self, count: int, status: int = 500) -> None:
        self._faults.extend([("status", status)] * count)

    def rate_limit(self, count: int, retry_after: str) -> None:
        self._faults.extend([("429", retry_after)] * count)

    def answer(self, count: int, body: str, content_type: str = "text/html") -> None:
        self._faults.extend([("answer", (body, content_type))] * count)

    def cut(self, count: int = 1, after: int = 2) -> None:
        self._faults.extend([("cut", after)] * count)

    def hang(self, count: int = 1) -> None:
        self._faults.extend([("hang", None)] * count)

    async def wait_for_completions(self, count: int) -> None:
        """Until at least ``count`` chat completion calls have arrived."""
        while len(self.completions) < count:
            self.received.clear()
            await self.received.wait()

    def release(self) -> None:
        self._release.set()

    def runtime_overrides(self, **extra: Any) -> dict[str, Any]:
        """Runtime settings that use this server as the openai provider, plus ``extra``."""
        return {"model_provider": "openai", "model_endpoint": self.url, "model_name": "m", **extra}

    @property
    def completions(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/chat/completions")]

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.calls.append(Call(request.path, request.headers.get("Authorization"), body))
        self.received.set()
        cut_after: int | None = None
        if self._faults and self._faults[0][0] == "cut":
            cut_after = self._faults.popleft()[1]
        if self._faults:
            kind, value = self._faults.popleft()
            if kind == "status":
                return web.json_response({"error": {"message": "injected"}}, status=value)
            if kind == "429":
                return web.json_response(
                    {"error": {"message": "slow down"}},
                    status=429,
                    headers={"Retry-After": value},
                )
            if kind == "answer":
                text, content_type = value
                return web.Response(text=text, content_type=content_type)
            if kind == "hang":
                await self._release.wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        last = body["messages"][-1]["content"]
        if body.get("stream"):
            return await self._stream(request, f"model says: {last}", cut_after)
        message: dict[str, Any] = {"role": "assistant", "content": f"model says: {last}"}
        usage = self.usage
        if self._scripted:
            message, scripted_usage = self._scripted.popleft()
            usage = scripted_usage or usage
        answer: dict[str, Any] = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        }
        if usage is not None:
            answer["usage"] = usage
        return web.json_response(answer)

    async def _stream(
        self, request: web.Request, text: str, cut_after: int | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = text.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        for index, piece in enumerate(pieces):
            if cut_after is not None and index == cut_after:
                assert request.transport is not None
                request.transport.close()  # mid-stream: no [DONE], no clean end
                return response
            chunk = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if self.latency:
                await asyncio.sleep(self.latency)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.calls.append(Call(request.path, auth or None, None))
        if auth.removeprefix("Bearer ") not in self.valid_keys:
            return web.json_response({"error": {"message": "invalid key"}}, status=401)
        return web.json_response({"data": [{"id": "test-model"}]})

    async def __aenter__(self) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self.server = TestServer(app, host=self.host, port=self.port)
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self.server is not None
        await self.server.close()


async def _serve(host: str, port: int) -> None:
    async with FakeProvider(host=host, port=port) as fake:
        print(f"fake provider on {fake.url} (valid key: sk-test-valid)", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    # By hand (docs/scenarios.md): `python -m tests.support.fake_provider HOST PORT`.
    import contextlib
    import sys

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sys.argv[1], int(sys.argv[2])))


def openai_settings(fake: FakeProvider, key_file: Path, **overrides: Any) -> dict[str, Any]:
    """Runtime settings for the openai provider at `fake`, with no retries unless
    `overrides` say so: a test counts the provider's calls, so one turn is one call."""
    return {
        "model_provider": "openai",
        "model_endpoint": fake.url,
        "model_name": "m",
        "model_api_key_file": key_file,
        "model_max_retries": 0,
        **overrides,
    }

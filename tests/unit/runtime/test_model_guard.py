"""The guarded model keeps one request's trouble from becoming everyone's (issue 16: 5, 7, 8).

Checks, against the real local fake provider:
- a provider refusing one client's request (400/413/422, e.g. context too long) answers
  that client 422 and never opens the circuit for the other clients;
- answers that are not a chat completion (HTML with status 200, JSON without `choices`)
  and exceptions no one foresaw in a provider are model errors: fallback, breaker count
  and metrics, never 500;
- the hanging provider with 16 concurrent clients: every client is answered (degraded, or
  503 with `reject`) within one request deadline plus a margin, retries and backoff
  included, also when two clients share a session and the second waits for the first.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_runtime.providers.builtin import BuiltinProvider
from agent_runtime.services import SERVICES
from tests.support.fake_provider import FakeProvider, openai_settings
from tests.support.runtime import MakeClient

HTML_ERROR_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("sk-test-valid\n")
    return path


async def post(api: TestClient[Any, Any], session: str, content: str) -> tuple[int, Any]:
    response = await api.post(f"/v1/sessions/{session}/messages", json={"content": content})
    return response.status, await response.json()


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_one_client_whose_requests_the_model_refuses_does_not_open_the_circuit(
    make_client: MakeClient, key_file: Path, status: int
) -> None:
    async with FakeProvider() as fake:
        api = await make_client(
            overrides=openai_settings(fake, key_file, circuit_failure_threshold=2)
        )
        fake.fail(5, status)
        for _ in range(5):
            answer, body = await post(api, "too-long", "yet more history")
            assert answer == 422
            assert body["error"]["code"] == "model_refused_request"
            assert "the model refused this request" in body["error"]["message"]
        assert (await api.get("/v1/sessions/too-long")).status == 404  # nothing stored
        answer, body = await post(api, "innocent", "hello")
        assert (answer, body["degraded"], body["reply"]) == (200, False, "model says: hello")
        services = api.app[SERVICES]
        assert services.model.breaker.state == "closed"
        metrics = services.metrics.exposition().decode()
        assert 'agentry_runtime_model_errors_total{kind="refused"} 5.0' in metrics


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (HTML_ERROR_PAGE, "text/html"),
        ('{"object": "error", "message": "no choices here"}', "application/json"),
        ('{"choices": [{"message": {"content": null}}]}', "application/json"),
        ('["a list"]', "application/json"),
    ],
)
async def test_answers_that_are_not_a_chat_completion_fall_back_and_count_against_the_breaker(
    make_client: MakeClient, key_file: Path, body: str, content_type: str
) -> None:
    async with FakeProvider() as fake:
        api = await make_client(
            overrides=openai_settings(fake, key_file, circuit_failure_threshold=5)
        )
        fake.answer(7, body, content_type)
        for _ in range(7):  # the review's HTML provider: 7 of 7 were 500 before
            answer, reply = await post(api, "s", "2+2")
            assert (answer, reply["degraded"], reply["reply"]) == (200, True, "2+2 = 4")
        services = api.app[SERVICES]
        assert services.model.breaker.state == "open"
        assert len(fake.completions) == 5  # the open circuit stopped calling it
        metrics = services.metrics.exposition().decode()
        assert 'agentry_runtime_model_errors_total{kind="bad_response"} 5.0' in metrics


async def test_an_html_answer_with_fallback_reject_is_503_not_500(
    make_client: MakeClient, key_file: Path
) -> None:
    async with FakeProvider() as fake:
        api = await make_client(overrides=openai_settings(fake, key_file, fallback="reject"))
        fake.answer(1, HTML_ERROR_PAGE)
        answer, body = await post(api, "s", "hi")
        assert (answer, body["error"]["code"]) == (503, "model_unavailable")


@pytest.mark.parametrize(("fallback", "expected_status"), [("builtin", 200), ("reject", 503)])
async def test_sixteen_clients_of_a_hanging_provider_are_all_answered_within_one_deadline(
    make_client: MakeClient, key_file: Path, fallback: str, expected_status: int
) -> None:
    deadline = 0.5
    margin = 2.0  # scheduling slack on a busy machine; ten retries would take > 5 s
    async with FakeProvider() as fake:
        api = await make_client(
            overrides=openai_settings(
                fake,
                key_file,
                fallback=fallback,
                model_timeout_seconds=deadline,
                model_max_retries=10,
                circuit_failure_threshold=100,
            )
        )
        fake.hang(1000)
        started = time.monotonic()
        answers = await asyncio.gather(*(post(api, f"s{i % 8}", "2+2") for i in range(16)))
        elapsed = time.monotonic() - started
        assert [status for status, _ in answers] == [expected_status] * 16
        assert elapsed < deadline + margin
        metrics = api.app[SERVICES].metrics.exposition().decode()
        assert 'agentry_runtime_model_errors_total{kind="timeout"}' in metrics


class BrokenProvider(BuiltinProvider):
    """A provider with a bug: every call raises something no one foresaw."""

    name = "broken"

    async def complete(self, conversation: Any, *, deadline: float | None = None) -> str:
        raise KeyError("usage")


class BrokenRemoteProvider(BrokenProvider):
    """The same bug in a provider that is not in process: its call runs as a task."""

    in_process = False


@pytest.mark.parametrize("provider", [BrokenProvider, BrokenRemoteProvider])
async def test_an_exception_no_one_foresaw_in_a_provider_is_a_model_error_not_a_500(
    make_client: MakeClient, provider: type[BrokenProvider]
) -> None:
    api = await make_client(provider=provider())
    answer, body = await post(api, "s", "2+2")
    assert (answer, body["degraded"]) == (200, True)
    metrics = api.app[SERVICES].metrics.exposition().decode()
    assert 'agentry_runtime_model_errors_total{kind="unexpected"} 1.0' in metrics

"""Model providers and graceful degradation, against a real local HTTP fake provider.

Checks: transient 500s are retried (bounded) and succeed; 429 + Retry-After is honoured;
a hang hits the per-attempt timeout; when the provider keeps failing the circuit opens,
replies come from the builtin fallback marked degraded, the pod stays ready, and once the
provider recovers the circuit closes by itself; with fallback `reject` the API answers
503 + Retry-After; the API key check is periodic and cached, never per probe.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.clock import ManualClock
from agent_runtime.errors import ModelError
from agent_runtime.providers.openai import OpenAIProvider, parse_retry_after
from agent_runtime.services import SERVICES
from tests.support.fake_provider import FakeProvider, openai_settings
from tests.support.runtime import MakeClient


def provider(fake: FakeProvider, key_file: Path | None, **options: Any) -> OpenAIProvider:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    values: dict[str, Any] = {"timeout_seconds": 5.0, "max_retries": 2, "sleep": record}
    values.update(options)
    made = OpenAIProvider(endpoint=fake.url, model="m", api_key_file=key_file, **values)
    made.delays = delays  # type: ignore[attr-defined]
    return made


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("sk-test-valid\n")
    return path


async def test_transient_server_errors_are_retried_with_bounded_jittered_backoff(
    key_file: Path,
) -> None:
    async with FakeProvider() as fake:
        client = provider(fake, key_file)
        await client.start()
        fake.fail(2, 502)
        assert await client.complete([{"role": "user", "content": "hi"}]) == "model says: hi"
        assert len(fake.completions) == 3
        assert all(0 <= d <= 0.5 for d in client.delays)  # type: ignore[attr-defined]
        assert fake.completions[0].authorization == "Bearer sk-test-valid"
        fake.fail(3, 500)
        with pytest.raises(ModelError) as caught:
            await client.complete([{"role": "user", "content": "hi"}])
        assert caught.value.kind == "server"
        assert len(fake.completions) == 6  # 1 + max_retries, no more
        await client.close()


async def test_the_providers_retry_after_is_honoured(key_file: Path) -> None:
    async with FakeProvider() as fake:
        client = provider(fake, key_file)
        await client.start()
        fake.rate_limit(1, "3")
        assert await client.complete([{"role": "user", "content": "x"}]) == "model says: x"
        assert client.delays == [3.0]  # type: ignore[attr-defined]
        fake.rate_limit(1, "120")  # longer than we are willing to wait: give up at once
        with pytest.raises(ModelError) as caught:
            await client.complete([{"role": "user", "content": "x"}])
        assert caught.value.kind == "rate_limited"
        assert caught.value.retry_after == 120
        await client.close()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.looptime
async def test_a_hanging_provider_hits_the_per_attempt_timeout(key_file: Path) -> None:
    """On fake loop time: a wall-clock 0.2 s timeout raced the request's own trip to the
    fake under load (it could fire before the call was recorded). Here the loop clock only
    jumps once nothing but the hang is left to wait for, so each attempt certainly arrived."""
    loop = asyncio.get_running_loop()
    async with FakeProvider() as fake:
        client = provider(fake, key_file, timeout_seconds=4.0, max_retries=1)
        await client.start()
        fake.hang(2)
        started = loop.time()
        with pytest.raises(ModelError) as caught:
            await client.complete([{"role": "user", "content": "x"}])
        assert caught.value.kind == "timeout"
        assert len(fake.completions) == 2
        assert loop.time() - started == pytest.approx(8.0, abs=0.5)  # two attempts, 4 s each
        fake.release()
        await client.close()


async def test_an_outage_opens_the_circuit_replies_degrade_the_pod_stays_ready_and_it_recovers(
    make_client: MakeClient, clock: ManualClock, key_file: Path
) -> None:
    async with FakeProvider() as fake:
        api = await make_client(
            overrides=openai_settings(
                fake, key_file, circuit_failure_threshold=3, circuit_open_seconds=30
            )
        )
        healthy = await (await api.post("/v1/sessions/s/messages", json={"content": "a"})).json()
        assert healthy["degraded"] is False
        assert healthy["reply"] == "model says: a"
        fake.fail(1000, 503)
        for _ in range(5):
            body = await (await api.post("/v1/sessions/s/messages", json={"content": "2+2"})).json()
            assert body["degraded"] is True
            assert body["reply"] == "2+2 = 4"
        assert len(fake.completions) == 1 + 3  # the open circuit stopped calling it
        services = api.app[SERVICES]
        assert services.model.breaker.state == "open"
        assert (await api.get("/readyz")).status == 200
        metrics = services.metrics.exposition().decode()
        assert "agentry_runtime_circuit_state 2.0" in metrics
        assert 'agentry_runtime_model_errors_total{kind="server"} 3.0' in metrics
        fake._faults.clear()
        await clock.advance(30)
        recovered = await (await api.post("/v1/sessions/s/messages", json={"content": "b"})).json()
        assert recovered == {"reply": "model says: b", "degraded": False, "turn": 7}
        assert services.model.breaker.state == "closed"
        assert services.metrics.summary()["degraded"] == 5


async def test_with_fallback_reject_a_failing_model_is_503_with_retry_after(
    make_client: MakeClient, key_file: Path
) -> None:
    async with FakeProvider() as fake:
        api = await make_client(
            overrides=openai_settings(
                fake,
                key_file,
                fallback="reject",
                circuit_failure_threshold=1,
                circuit_open_seconds=45,
            )
        )
        fake.fail(10, 500)
        first = await api.post("/v1/sessions/s/messages", json={"content": "a"})
        assert first.status == 503
        assert first.headers["Retry-After"] == "45"
        assert (await first.json())["error"]["code"] == "model_unavailable"
        assert (await api.get("/readyz")).status == 200
        assert (await api.get("/v1/sessions/s")).status == 404  # nothing was stored


async def test_the_api_key_is_checked_periodically_and_cached_not_per_probe(
    make_client: MakeClient, clock: ManualClock, tmp_path: Path
) -> None:
    bad_key = tmp_path / "bad-key"
    bad_key.write_text("sk-revoked")
    async with FakeProvider() as fake:
        api = await make_client(
            overrides={
                "model_provider": "openai",
                "model_endpoint": fake.url,
                "model_name": "m",
                "model_api_key_file": bad_key,
                "model_key_check_interval_seconds": 60,
            }
        )
        checks = [c for c in fake.calls if c.path.endswith("/models")]
        assert len(checks) == 1
        for _ in range(5):
            response = await api.get("/readyz?verbose")
            assert response.status == 500
        assert "[-]model failed: API key rejected by provider (401)" in await response.text()
        assert len([c for c in fake.calls if c.path.endswith("/models")]) == 1
        bad_key.write_text("sk-test-valid")  # the Secret is rotated
        await clock.advance(60)
        while api.app[SERVICES].key_checker.checks < 2:
            await clock.advance(0)
        assert (await api.get("/readyz")).status == 200

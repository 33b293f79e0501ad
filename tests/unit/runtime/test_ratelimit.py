"""Rate limiting: token buckets per client and per replica, bounded memory, HTTP fields.

Checks: a client gets `burst` requests, then 429 with Retry-After (whole seconds, >= 1)
and the IETF draft RateLimit/RateLimit-Policy fields; tokens come back with (injected)
time; one client's flood does not throttle another, but the replica bucket caps the sum;
a flood of 100,000 new client ids keeps the table at its bound; refusals are counted and
the log is sampled (first per client per 10 s); with auth on, the default client key is
the token, so rotating `X-Client-ID` neither escapes one's own bucket nor drains another's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent_runtime.clock import ManualClock
from agent_runtime.ratelimit import RateLimiter
from agent_runtime.services import SERVICES
from tests.support.runtime import MakeClient


async def test_a_client_gets_its_burst_then_is_refused_until_tokens_refill() -> None:
    now = [0.0]
    limiter = RateLimiter(
        10.0,
        10,
        per_client=True,
        client_rate=2.0,
        client_burst=3,
        max_clients=10,
        clock=lambda: now[0],
    )
    assert [limiter.decide("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.decide("a")
    assert refused.retry_after == 1
    now[0] += 0.5
    assert limiter.decide("a").allowed
    assert not limiter.decide("a").allowed


async def test_one_noisy_client_does_not_throttle_another_but_the_replica_caps_the_sum() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, 4, per_client=True, max_clients=10, clock=lambda: now[0])
    # By default a client gets half of the replica's burst: the noisy one is cut at 2 ...
    assert [limiter.decide("noisy").allowed for _ in range(3)] == [True, True, False]
    assert limiter.decide("noisy").scope == "client"
    # ... so a quiet client still gets through ...
    assert limiter.decide("quiet").allowed
    assert limiter.decide("quiet").allowed
    # ... until the replica's own bucket, shared by everyone, is empty.
    third = limiter.decide("third")
    assert not third.allowed
    assert third.scope == "replica"


async def test_explicit_client_limits_replace_the_half_share_default() -> None:
    limiter = RateLimiter(
        10.0,
        10,
        per_client=True,
        client_rate=1.0,
        client_burst=1,
        max_clients=10,
        clock=lambda: 0.0,
    )
    assert [limiter.decide("a").allowed for _ in range(2)] == [True, False]
    assert limiter.decide("a").headers()["RateLimit-Policy"] == '"default";q=1;w=1'


async def test_a_flood_of_new_client_ids_keeps_the_bucket_table_at_its_bound() -> None:
    limiter = RateLimiter(1e9, 10**6, per_client=True, max_clients=1000, clock=lambda: 0.0)
    for i in range(100_000):
        limiter.decide(f"client-{i}")
    assert limiter.tracked_clients == 1000


async def test_headers_follow_the_ietf_draft_and_retry_after_is_whole_seconds() -> None:
    now = [0.0]
    limiter = RateLimiter(0.5, 2, per_client=False, max_clients=10, clock=lambda: now[0])
    allowed = limiter.decide("x")
    assert allowed.headers() == {
        "RateLimit-Policy": '"default";q=2;w=4',
        "RateLimit": '"default";r=1;t=2',
    }
    limiter.decide("x")
    refused = limiter.decide("x").headers()
    assert refused["Retry-After"] == "2"
    assert refused["RateLimit"] == '"default";r=0;t=4'


async def test_over_the_limit_the_api_answers_429_with_the_fields_and_counts_it(
    make_client: MakeClient, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(
        overrides={
            "rate_limit_rps": 2,
            "rate_limit_burst": 4,
            "rate_limit_client_rps": 1,
            "rate_limit_client_burst": 2,
        }
    )
    headers = {"X-Client-ID": "team-1"}
    for _ in range(2):
        ok = await client.post("/v1/sessions/s/messages", json={"content": "hi"}, headers=headers)
        assert ok.status == 200
        assert "RateLimit" in ok.headers
    with caplog.at_level(logging.WARNING, logger="agent_runtime.ratelimit"):
        for _ in range(3):
            refused = await client.post(
                "/v1/sessions/s/messages", json={"content": "hi"}, headers=headers
            )
            assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"] == '"default";q=2;w=2'
    assert refused.headers["RateLimit"].startswith('"default";r=0;')
    assert len([r for r in caplog.records if r.message == "rate limit exceeded"]) == 1
    metrics = client.app[SERVICES].metrics
    assert metrics.summary()["throttled"] == 3
    assert b'agentry_runtime_throttled_total{scope="client"} 3.0' in metrics.exposition()
    await clock.advance(1.0)
    again = await client.post("/v1/sessions/s/messages", json={"content": "hi"}, headers=headers)
    assert again.status == 200
    assert (await client.get("/readyz")).status == 200  # probes are never limited


async def test_with_auth_on_a_rotated_client_header_does_not_escape_the_token_bucket(
    make_client: MakeClient, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:tok-alice\nbob:tok-bob\n")
    client = await make_client(
        overrides={
            "auth_tokens_file": tokens,
            "rate_limit_rps": 20,
            "rate_limit_burst": 20,
            "rate_limit_client_burst": 10,
        }
    )

    async def post(token: str, client_id: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "X-Client-ID": client_id}
        response = await client.post(
            "/v1/sessions/s/messages", json={"content": "hi"}, headers=headers
        )
        return response.status

    alice = [await post("tok-alice", f"rotated-{i}") for i in range(20)]
    assert alice.count(200) == 10
    assert await post("tok-bob", "rotated-0") == 200  # alice's header names did not drain bob

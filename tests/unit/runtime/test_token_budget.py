"""rateLimit.tokensPerMinute: reserve before the model call, settle with its usage after.

Checks: with a scripted model reporting ``usage``, the budget refuses at the right turn
with 429, Retry-After and the RateLimit fields, and admits again once the minute has
refilled it; a client's own budget refuses that client only; a turn that used more than
its reserve leaves a debt, one that used less is refunded; a refused or failed request
costs nothing; a new limits file changes the budget live.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.clock import ManualClock
from agent_runtime.errors import TokenBudgetSpent
from agent_runtime.token_budget import OUTPUT_ALLOWANCE, TokenBudget
from tests.support.fake_provider import FakeProvider
from tests.support.runtime import MakeClient, MountedVolume

USAGE = {"prompt_tokens": 400, "completion_tokens": 100}  # 500 a turn


async def turn(client: Any, session: str, client_id: str = "a") -> Any:
    return await client.post(
        f"/v1/sessions/{session}/messages",
        json={"content": "hello"},
        headers={"X-Client-ID": client_id},
    )


async def test_the_budget_refuses_at_the_right_turn_and_the_next_minute_admits(
    make_client: MakeClient, clock: ManualClock
) -> None:
    async with FakeProvider(usage=USAGE) as model:
        overrides = model.runtime_overrides(tokens_per_minute=1200, rate_limit_per_client=False)
        client = await make_client(overrides=overrides)
        statuses = [(await turn(client, f"s{n}")).status for n in range(2)]
        refused = await turn(client, "s3")
        assert statuses == [200, 200]  # 1200 - 500 - 500 = 200 left
        assert refused.status == 429
        assert len(model.completions) == 2  # the refusal never reached the model
        assert (await refused.json())["error"]["code"] == "token_budget_spent"
        # 200 left; the turn reserves its 20-character body's 5 tokens and the answer's
        # allowance (261), so it waits for the 61 missing at 20 tokens a second.
        assert 5 + OUTPUT_ALLOWANCE - 200 == 61
        assert refused.headers["Retry-After"] == "4"
        assert refused.headers["RateLimit-Policy"] == '"tokens";q=1200;w=60'
        assert refused.headers["RateLimit"] == '"tokens";r=200;t=50'
        await clock.advance(60)
        assert (await turn(client, "s4")).status == 200
        metrics = await (await client.get("/metrics")).text()
    assert 'agentry_runtime_throttled_total{scope="tokens_replica"} 1.0' in metrics
    input_sum = (
        'gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",'
        'gen_ai_provider_name="openai",gen_ai_token_type="input"} 1200.0'
    )
    assert input_sum in metrics


async def test_a_clients_budget_refuses_that_client_only(
    make_client: MakeClient,
) -> None:
    async with FakeProvider(usage=USAGE) as model:
        overrides = model.runtime_overrides(tokens_per_minute=10_000, client_tokens_per_minute=600)
        client = await make_client(overrides=overrides)
        assert (await turn(client, "a1", "a")).status == 200  # 600 - 500 = 100 left
        refused = await turn(client, "a2", "a")
        other = await turn(client, "b1", "b")
    assert refused.status == 429
    assert refused.headers["RateLimit-Policy"] == '"tokens";q=600;w=60'
    assert other.status == 200


async def test_a_new_limits_file_changes_the_budget_without_a_restart(
    make_client: MakeClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "limits"
    folder.mkdir()
    limits = MountedVolume(folder, "limits.json", json.dumps({"requestsPerSecond": 0}))
    async with FakeProvider(usage=USAGE) as model:
        overrides = model.runtime_overrides(limits_file=limits.path, rate_limit_per_client=False)
        client = await make_client(overrides=overrides)
        assert [(await turn(client, f"s{n}")).status for n in range(3)] == [200] * 3
        limits.update(json.dumps({"requestsPerSecond": 0, "tokensPerMinute": 600}))
        await clock.advance(2)  # the file is looked at once a second at most
        statuses = [(await turn(client, f"t{n}")).status for n in range(2)]
    assert statuses == [200, 429]


def test_an_overrun_is_a_debt_and_an_underrun_is_refunded() -> None:
    now = [0.0]
    budget = TokenBudget(per_client=False, max_clients=10, clock=lambda: now[0])
    budget.configure(600, 0)
    first = budget.reserve("c", 40)  # 10 + 256 reserved
    first.tokens.used = 900  # far more than reserved: the turn is not cut off
    budget.settle(first)
    with pytest.raises(TokenBudgetSpent) as refusal:
        budget.reserve("c", 40)
    # 600 - 900 = -300; 266 are needed at 10 a second: 57 seconds.
    assert refusal.value.headers["Retry-After"] == "57"
    now[0] = 57.0
    second = budget.reserve("c", 40)
    budget.settle(second)  # nothing used (the request failed): all of it comes back
    third = budget.reserve("c", 40)
    assert third.amount == 266

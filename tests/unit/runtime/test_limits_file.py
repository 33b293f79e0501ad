"""The replica's rate limits from a mounted file, changed without a restart (issue 8).

Checks: the file's share is enforced (429 past its burst); a new version (the operator
rewrote the ConfigMap after a scale or a new spec.rateLimit) applies a second later with
no restart, and so does switching limiting off and on; a version that cannot be used is
logged, naming the field, and the previous limits stay; at startup an unusable file is a
configuration error naming AGENTRY_LIMITS_FILE; a retuned bucket keeps what it had up to
its new size (a scale-out neither resets nor doubles anyone's allowance).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent_runtime.app import load_limits
from agent_runtime.clock import ManualClock
from agent_runtime.errors import ConfigError
from agent_runtime.limits import Limits, LimitsFileError
from agent_runtime.ratelimit import RateLimiter
from tests.support.runtime import MakeClient, MountedVolume, make_settings


def limits_json(rps: float, burst: int, **client: float) -> str:
    return json.dumps({"requestsPerSecond": rps, "burst": burst, **client})


async def admitted(client: TestClient[Any, Any], count: int) -> list[int]:
    """Statuses of `count` requests sent at one instant (the manual clock stands still)."""
    statuses = []
    for i in range(count):
        response = await client.post(
            f"/v1/sessions/s{i}/messages", json={"content": "hi"}, headers={"X-Client-ID": "c"}
        )
        statuses.append(response.status)
    return statuses


async def test_the_files_share_is_enforced_and_a_new_version_applies_without_a_restart(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock
) -> None:
    volume = MountedVolume(
        tmp_path, "limits.json", limits_json(1, 2, perClientRequestsPerSecond=1, perClientBurst=2)
    )
    client = await make_client(
        overrides={"limits_file": volume.path, "rate_limit_rps": 100, "rate_limit_burst": 100}
    )
    assert await admitted(client, 3) == [200, 200, 429], "the file wins over the variables"
    volume.update(
        limits_json(1, 6, perClientRequestsPerSecond=1, perClientBurst=6)
    )  # 3 → 1 replicas
    await clock.advance(1.0)
    # One second refilled one token at the old rate (the replica bucket had 0), and the new
    # size lets the bucket fill further from now on.
    assert await admitted(client, 2) == [200, 429]
    await clock.advance(10.0)  # fills to the new burst of 6, well past the old 2
    assert await admitted(client, 7) == [200] * 6 + [429]


async def test_limiting_is_switched_off_and_on_by_the_file(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock
) -> None:
    volume = MountedVolume(tmp_path, "limits.json", limits_json(0, 0))
    client = await make_client(overrides={"limits_file": volume.path})
    assert await admitted(client, 5) == [200] * 5
    volume.update(limits_json(1, 1))
    await clock.advance(1.0)
    assert await admitted(client, 2) == [200, 429]
    volume.update(limits_json(0, 0))
    await clock.advance(1.0)
    assert await admitted(client, 3) == [200] * 3


async def test_an_unusable_new_version_keeps_the_old_limits_and_logs_the_field(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock, log_stream: io.StringIO
) -> None:
    volume = MountedVolume(tmp_path, "limits.json", limits_json(1, 1))
    client = await make_client(overrides={"limits_file": volume.path})
    volume.update(json.dumps({"requestsPerSecond": -3, "burst": 100}))
    await clock.advance(1.0)
    assert await admitted(client, 2) == [200, 429]
    errors = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    errors = [line for line in errors if line["level"] == "error"]
    assert len(errors) == 1, "reported once, not on every request"
    assert errors[0]["reason"].startswith("requestsPerSecond: ")
    volume.update("{not json")
    await clock.advance(1.0)
    assert await admitted(client, 1) == [429]
    assert "not JSON" in log_stream.getvalue()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[]", "must be a JSON object"),
        ('{"burst": "lots"}', "burst: "),
        ('{"perClientBurst": -1}', "perClientBurst: "),
        ("", "not JSON"),
    ],
)
def test_a_file_it_cannot_use_is_refused_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(LimitsFileError, match=reason):
        Limits.parse(text)


def test_an_unusable_file_at_startup_is_a_config_error_naming_the_setting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "limits.json"
    path.write_text('{"burst": -1}')
    settings = make_settings(tmp_path, limits_file=path)
    with pytest.raises(ConfigError, match="AGENTRY_LIMITS_FILE: burst: "):
        load_limits(settings, ManualClock())


def test_without_a_file_the_variables_give_fixed_limits(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limit_rps=5, rate_limit_burst=10)
    limiter = load_limits(settings, ManualClock()).current()
    assert limiter is not None
    assert (limiter.rate, limiter.burst, limiter.client_burst) == (5, 10, 5)
    assert load_limits(make_settings(tmp_path), ManualClock()).current() is None


def test_a_retuned_bucket_keeps_its_tokens_up_to_the_new_size() -> None:
    now = [0.0]
    limiter = RateLimiter(10, 10, per_client=True, max_clients=10, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.decide("c").allowed  # replica 7 left, client 2 left
    limiter.reconfigure(2, 4)  # a smaller share: replica capped at 4, client at 2
    assert [limiter.decide("d").allowed for _ in range(3)] == [True, True, False]
    assert limiter.client_burst == 2
    limiter.reconfigure(20, 40)
    now[0] = 0.1  # 0.1 s at the new rate: 2 tokens for the replica
    assert limiter.decide("e").allowed

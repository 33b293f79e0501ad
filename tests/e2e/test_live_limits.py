"""A new rate limit reaches the pods without rolling them (issue 8, "scaling restarts
nothing").

The operator writes each replica's share into the ConfigMap `<agent>-limits`, which the
pods mount and reload; the pod template does not change. On the local cluster with the
chart-installed operator: one Agent allowing 1 request/s (burst 2) refuses most of a quick
burst through the Service; after `kubectl patch` to 50/s the same pod (same UID, no
restart) admits the whole burst, and after going back to 1/s refuses again. Scaling a
postgres Agent is in test_postgres_state.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_agent_lifecycle import patch_spec, ready_pod, wait_phase
from tests.support.agents import apply_agent
from tests.support.e2e import ServiceProxy, wait_for

pytestmark = pytest.mark.e2e

BURST = 8


def statuses(proxy: ServiceProxy, round_: str) -> list[int]:
    """A quick burst of turns (each in its own session) through the Service."""
    return [proxy.turn(f"{round_}-{i}", "hi").status for i in range(BURST)]


def identity(pod: dict[str, Any]) -> tuple[str, int]:
    return pod["metadata"]["uid"], pod["status"]["containerStatuses"][0]["restartCount"]


def test_a_rate_limit_change_keeps_the_pod_and_429s_follow_the_new_rate(
    operator: Any, namespace: str
) -> None:
    slow = {"requestsPerSecond": 1, "burst": 2, "perClient": False}
    apply_agent(
        operator, "paced", namespace, {"state": {"backend": "configmap"}, "rateLimit": slow}
    )
    wait_phase(operator, "paced", namespace, "Running")
    before = identity(ready_pod(operator, "paced", namespace))
    proxy = ServiceProxy(operator, namespace, "paced")

    first = statuses(proxy, "slow")
    assert first.count(429) >= BURST - 4, first  # 2 of burst, about 1 a second after
    assert set(first) <= {200, 429}

    patch_spec(operator, "paced", namespace, {"rateLimit": {"requestsPerSecond": 50, "burst": 50}})
    wait_for(
        lambda: statuses(proxy, "fast") == [200] * BURST, 60, "every request of a burst admitted"
    )
    patch_spec(operator, "paced", namespace, {"rateLimit": slow})
    wait_for(
        lambda: statuses(proxy, "slow-again").count(429) >= BURST - 4,
        60,
        "the burst refused again at 1/s",
    )
    refused = proxy.turn("one-more", "hi")
    if refused.status == 429:
        assert int(refused.headers["Retry-After"]) >= 1
    assert identity(ready_pod(operator, "paced", namespace)) == before, "no pod rolled"

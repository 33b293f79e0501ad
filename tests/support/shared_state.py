"""Building ``SharedSessionService`` replicas on a test database, as app.py does.

``CountingProvider`` answers with how many questions the conversation it was given holds,
so a reply tells which earlier turns the model saw; ``delay`` widens the window in which
concurrent turns could interleave if they were not serialized.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent_runtime.circuit import CircuitBreaker
from agent_runtime.clock import Clock, SystemClock
from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.metrics import Metrics
from agent_runtime.providers.guarded import GuardedModel
from agent_runtime.quotas import Quotas, SessionLimits
from agent_runtime.shared_sessions import SharedSessionService
from agent_runtime.state.postgres import PostgresStore


@dataclass
class CountingProvider:
    delay: float = 0.0
    name: str = "counting"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def complete(
        self, conversation: Sequence[Mapping[str, str]], *, deadline: float | None = None
    ) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        return f"seen {sum(1 for m in conversation if m['role'] == 'user')}"

    async def check_credentials(self) -> str | None:
        return None


def replica(
    url: str,
    keyring: KeyRing,
    *,
    name: str = "demo-0",
    limits: SessionLimits | None = None,
    clock: Clock | None = None,
    provider: CountingProvider | None = None,
    cache_sessions: int = 1000,
    retention_seconds: float = 0.0,
    timeout_seconds: float = 10.0,
    schema: str = "agentry",
    pool_size: int = 10,
) -> SharedSessionService:
    """One replica's service: its own pool, cache and locks, the shared database."""
    clock = clock or SystemClock()
    metrics = Metrics()
    breaker = CircuitBreaker(failure_threshold=5, open_seconds=30, clock=clock.monotonic)
    model = GuardedModel(
        provider or CountingProvider(),
        breaker,
        fallback="reject",
        metrics=metrics,
        timeout_seconds=timeout_seconds,
    )
    store = PostgresStore(
        url, namespace="default", agent="demo", schema_name=schema, pool_size=pool_size
    )
    return SharedSessionService(
        store,
        model,
        metrics,
        Quotas(limits or SessionLimits(), clock),
        keyring=keyring,
        context=RecordContext("default", "demo", name, ""),
        clock=clock,
        cache_sessions=cache_sessions,
        retention_seconds=retention_seconds,
    )

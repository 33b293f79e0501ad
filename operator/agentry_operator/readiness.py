"""The operator's readiness, `/readyz`: watching, and caught up with the Agents that exist.

Liveness is kopf's own `/healthz`: it answers while the event loop runs and the probe
handlers answer, and a failure means "restart me". Readiness means something else: the
operator has listed the Agents it watches and kopf's watch has brought each of them to a
handler of this process at least once (a converge tried, a refused spec recorded, a
deletion finalized). Until then a fresh operator (after an upgrade, say) has not yet
put back what drifted while none ran; it is alive, only not caught up. A handler that
fails still counts: it is retried, and readiness is about having seen every Agent, not
about every Agent being healthy (that is each Agent's own Ready condition).

`handlers.py` marks Agents handled and starts the server; `CatchUp` is plain state
tested without a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

logger = logging.getLogger(__name__)

ListAgents = Callable[[], Awaitable[set[str]]]
"""Lists the `namespace/name` of every Agent the operator watches."""


@dataclass
class CatchUp:
    """The Agents that existed at startup and that no handler has seen yet."""

    pending: set[str] | None = None
    """None until the first list succeeded."""
    seen: set[str] = field(default_factory=set)

    def expect(self, existing: Iterable[str]) -> None:
        """The first list: wait for these, except those a handler has seen already."""
        self.pending = set(existing) - self.seen

    def handled(self, key: str) -> None:
        self.seen.add(key)
        if self.pending is not None:
            self.pending.discard(key)

    def forget_gone(self, existing: Iterable[str]) -> None:
        """Drop Agents deleted before any handler saw them (kopf never will)."""
        if self.pending:
            self.pending &= set(existing)

    @property
    def ready(self) -> bool:
        return self.pending is not None and not self.pending

    def describe(self) -> str:
        if self.pending is None:
            return "not caught up: the Agents have not been listed yet"
        if self.pending:
            first = ", ".join(sorted(self.pending)[:5])
            more = f" and {len(self.pending) - 5} more" if len(self.pending) > 5 else ""
            return f"not caught up: {len(self.pending)} Agent(s) not handled yet: {first}{more}"
        return "ok: watching, every Agent handled since start"


async def refresh(catch_up: CatchUp, list_agents: ListAgents) -> None:
    """List the Agents (first time, or again to drop deleted ones); errors keep it unready."""
    try:
        existing = await list_agents()
    except Exception as exc:  # any failure to list means "not ready", and the log says why
        logger.warning("readiness: cannot list Agents yet: %s", exc)
        return
    if catch_up.pending is None:
        catch_up.expect(existing)
    else:
        catch_up.forget_gone(existing)


def create_app(catch_up: CatchUp, list_agents: ListAgents) -> web.Application:
    """`GET /readyz`: 200 when caught up, 503 with the reason otherwise."""

    async def readyz(_: web.Request) -> web.Response:
        if not catch_up.ready:
            await refresh(catch_up, list_agents)
        status = 200 if catch_up.ready else 503
        return web.Response(status=status, text=catch_up.describe() + "\n")

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    return app


async def serve(catch_up: CatchUp, list_agents: ListAgents, port: int) -> web.AppRunner:
    """Start the readiness server on all interfaces; the caller cleans the runner up."""
    runner = web.AppRunner(create_app(catch_up, list_agents), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - the kubelet probes the pod IP
    return runner

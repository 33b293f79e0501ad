"""The objects one runtime app is made of, kept under one typed app key.

``app.create_app`` builds a ``Services``; handlers and middlewares read it with
``request.app[SERVICES]``. Keeping them in one dataclass makes the wiring visible in one
place and lets tests inspect any piece of a running app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent_runtime.authfailures import FailedAuthentications
from agent_runtime.clock import Clock
from agent_runtime.concurrency import ClientSlots
from agent_runtime.config import Settings
from agent_runtime.crypto import KeyRing
from agent_runtime.health import Check, ModelKeyChecker
from agent_runtime.heartbeat import HeartbeatLoop
from agent_runtime.highwater import HighWater
from agent_runtime.limits import LiveLimiter
from agent_runtime.metrics import Metrics
from agent_runtime.providers.guarded import GuardedModel
from agent_runtime.sessions import SessionService
from agent_runtime.shared_sessions import SharedSessionService
from agent_runtime.token_budget import TokenBudget
from agent_runtime.tokens import CallerTokensFile
from agent_runtime.turns import Turns

if TYPE_CHECKING:  # the MCP SDK is imported only by an Agent that has tools
    from agent_runtime.tools.toolbox import Toolbox


@dataclass
class Services:
    settings: Settings
    clock: Clock
    metrics: Metrics
    keyring: KeyRing
    sessions: SessionService | SharedSessionService
    turns: Turns
    model: GuardedModel
    key_checker: ModelKeyChecker
    checks: dict[str, Check]
    heartbeat: HeartbeatLoop
    limits: LiveLimiter
    tokens: CallerTokensFile | None
    client_slots: ClientSlots
    auth_failures: FailedAuthentications | None
    token_budget: TokenBudget
    toolbox: Toolbox | None = None
    started: bool = False
    shutting_down: bool = False
    in_flight: int = 0
    tasks: list[Any] = field(default_factory=list)
    # The mark the previous heartbeat left: published again while sessions are refused,
    # so a refusing (or unreadable) runtime never lowers it.
    previous_mark: HighWater | None = None


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)

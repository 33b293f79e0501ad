"""The app factory: ``create_app(settings, ...)`` wires every piece of one runtime.

Tests pass fakes (clock, provider, store, heartbeat publisher, key ring) through the same
constructor production uses. Resources are opened and closed in one cleanup context, in
an order that matters: provider and store open → state restored → background tasks
(checkpoints, model key check, heartbeat) → ready. On the way out, after aiohttp has
drained in-flight requests: tasks stop → final checkpoint → final heartbeat
(``ready: false`` with that checkpoint) → store and provider closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent_runtime import disclosure, health, highwater
from agent_runtime.a2a_api import a2a_routes
from agent_runtime.authfailures import FailedAuthentications
from agent_runtime.circuit import CircuitBreaker
from agent_runtime.clock import Clock, SystemClock
from agent_runtime.concurrency import ClientSlots
from agent_runtime.config import Settings, env_name
from agent_runtime.crypto import KeyRing, RecordContext
from agent_runtime.errors import ConfigError
from agent_runtime.heartbeat import HeartbeatLoop, HeartbeatPublisher, NullPublisher, rfc3339
from agent_runtime.keys import load_keyring
from agent_runtime.limits import Limits, LimitsFile, LimitsFileError, LiveLimiter
from agent_runtime.metrics import Metrics
from agent_runtime.middleware.context import request_context
from agent_runtime.openai_api import openai_routes
from agent_runtime.profile import ProfileSource
from agent_runtime.providers.base import ModelProvider
from agent_runtime.providers.builtin import BuiltinProvider
from agent_runtime.providers.guarded import GuardedModel
from agent_runtime.providers.openai import OpenAIProvider
from agent_runtime.quotas import Quotas, SessionLimits
from agent_runtime.routes import routes
from agent_runtime.services import SERVICES, Services
from agent_runtime.sessions import SessionService
from agent_runtime.shared_sessions import SharedSessionService
from agent_runtime.state import (
    MemoryStore,
    PvcStore,
    Restored,
    StateError,
    StateStore,
    StateUnreadable,
)
from agent_runtime.state.aside import set_aside
from agent_runtime.state.postgres import PostgresStore
from agent_runtime.state.postgres.url import ConnectionUrl
from agent_runtime.token_budget import TokenBudget
from agent_runtime.tokens import CallerTokensFile, TokenFileError
from agent_runtime.tools.loop import ToolPolicy
from agent_runtime.turns import Turns

if TYPE_CHECKING:
    from agent_runtime.tools.toolbox import Toolbox

log = logging.getLogger("agent_runtime.app")

RESTART_INTERVAL_SECONDS = 5.0
"""How often a runtime whose database was missing or too new at start-up tries again."""
STATS_TIMEOUT_SECONDS = 3.0
"""The heartbeat's count of sessions and old-key rows: during an outage the beat goes out
with the last counts rather than waiting for the database."""


def build_provider(settings: Settings) -> ModelProvider:
    if settings.model_provider == "openai":
        assert settings.model_endpoint
        assert settings.model_name
        return OpenAIProvider(
            endpoint=settings.model_endpoint,
            model=settings.model_name,
            api_key_file=settings.model_api_key_file,
            timeout_seconds=settings.model_timeout_seconds,
            max_retries=settings.model_max_retries,
        )
    return BuiltinProvider()


def build_toolbox(settings: Settings, metrics: Metrics, clock: Clock) -> Toolbox | None:
    """The Agent's tool servers, or None without any (the MCP SDK is then never imported)."""
    if not settings.tools:
        return None
    from agent_runtime.tools.toolbox import Toolbox

    # The SDK's HTTP client logs every request at INFO; ours logs what matters.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    return Toolbox(
        settings.tools, metrics, clock.monotonic, retry_seconds=settings.tool_list_refresh_seconds
    )


def toolbox_check(toolbox: Toolbox) -> health.Check:
    async def check() -> health.CheckResult:
        return toolbox.health()

    return check


def record_context(settings: Settings) -> RecordContext:
    return RecordContext(settings.namespace, settings.agent_name, settings.replica, "")


def build_store(settings: Settings, keyring: KeyRing) -> StateStore:
    """Memory and pvc stores; the configmap store needs an API client (``lifecycle``)."""
    if settings.state_backend == "memory":
        return MemoryStore(
            keyring, record_context(settings), generations=settings.state_generations
        )
    if settings.state_backend == "pvc":
        moved = set_aside(settings.state_dir, settings.state_set_aside)
        if moved:
            log.warning(
                "fresh start accepted: old state set aside, starting empty",
                extra={"fields": {"files": len(moved), "stamp": settings.state_set_aside}},
            )
        return PvcStore(
            settings.state_dir, keyring, record_context(settings), settings.state_generations
        )
    raise ValueError("the configmap store is built by lifecycle.build_configmap_store")


def build_shared_sessions(
    settings: Settings,
    keyring: KeyRing,
    model: GuardedModel,
    metrics: Metrics,
    clock: Clock,
) -> SharedSessionService:
    """The postgres backend: the store and the service over it (no journal, no checkpoint)."""
    url = (
        ConnectionUrl(path=settings.postgres_url_file)
        if settings.postgres_url_file is not None
        else ConnectionUrl(settings.postgres_url)
    )
    store = PostgresStore(
        url,
        namespace=settings.namespace,
        agent=settings.agent_name,
        schema_name=settings.postgres_schema,
        pool_size=settings.postgres_pool_size,
        sslmode=settings.postgres_sslmode,
    )
    return SharedSessionService(
        store,
        model,
        metrics,
        Quotas(session_limits(settings), clock),
        keyring=keyring,
        context=record_context(settings),
        clock=clock,
        cache_sessions=settings.postgres_cache_sessions,
        retention_seconds=settings.state_retention_seconds,
    )


def session_limits(settings: Settings) -> SessionLimits:
    return SessionLimits(
        max_turns=settings.max_turns,
        max_session_bytes=settings.max_session_bytes,
        max_sessions=settings.max_sessions,
        max_state_bytes=settings.max_state_bytes,
        idle_ttl_seconds=settings.session_idle_ttl_seconds,
    )


def load_tokens(settings: Settings, clock: Clock) -> CallerTokensFile | None:
    """The tokens file, or None without auth; a file it cannot use is a ConfigError."""
    if settings.auth_tokens_file is None:
        return None
    try:
        return CallerTokensFile(settings.auth_tokens_file, clock.monotonic)
    except TokenFileError as exc:
        raise ConfigError(env_name("auth_tokens_file"), str(exc)) from None


def load_limits(settings: Settings, clock: Clock) -> LiveLimiter:
    """The rate limits: from AGENTRY_LIMITS_FILE, reloaded when it changes, or fixed by the
    AGENTRY_RATE_LIMIT_* variables; a limits file it cannot use is a ConfigError."""
    source = None
    limits = Limits.from_settings(settings)
    if settings.limits_file is not None:
        try:
            source = LimitsFile(settings.limits_file, clock.monotonic)
        except LimitsFileError as exc:
            raise ConfigError(env_name("limits_file"), str(exc)) from None
        limits = source.value
    return LiveLimiter(
        limits,
        per_client=settings.rate_limit_per_client,
        max_clients=settings.rate_limit_max_clients,
        clock=clock.monotonic,
        source=source,
    )


def failed_authentications(
    settings: Settings, tokens: CallerTokensFile | None, clock: Clock
) -> FailedAuthentications | None:
    """The per-address throttle of failed authentications, with auth on and a limit set."""
    if tokens is None or settings.auth_failures_per_minute == 0:
        return None
    return FailedAuthentications(settings.auth_failures_per_minute, clock=clock.monotonic)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    provider: ModelProvider | None = None,
    store: StateStore | None = None,
    keyring: KeyRing | None = None,
    publisher: HeartbeatPublisher | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    keyring = keyring or load_keyring(settings)
    if settings.state_backend != "postgres":
        store = store or build_store(settings, keyring)
    provider = provider or build_provider(settings)
    publisher = publisher or NullPublisher()

    breaker = CircuitBreaker(
        failure_threshold=settings.circuit_failure_threshold,
        open_seconds=settings.circuit_open_seconds,
        clock=clock.monotonic,
        on_change=metrics.set_circuit,
    )
    metrics.set_circuit("closed")
    toolbox = build_toolbox(settings, metrics, clock)
    model = GuardedModel(
        provider,
        breaker,
        fallback=settings.fallback,
        metrics=metrics,
        timeout_seconds=settings.model_timeout_seconds,
        toolbox=toolbox,
        tool_policy=ToolPolicy(settings.tool_max_steps, settings.tool_max_parallel),
    )
    sessions: SessionService | SharedSessionService
    if store is None:
        sessions = build_shared_sessions(settings, keyring, model, metrics, clock)
    else:
        sessions = SessionService(store, model, metrics, Quotas(session_limits(settings), clock))
    key_checker = health.ModelKeyChecker(provider, clock, settings.model_key_check_interval_seconds)
    limits = load_limits(settings, clock)
    tokens = load_tokens(settings, clock)

    async def state_check() -> health.CheckResult:
        if sessions.unavailable_reason is not None:
            return health.CheckResult("state", False, sessions.unavailable_reason)
        try:
            room = await sessions.store.probe()
        except StateError as error:
            return health.CheckResult("state", False, str(error))
        if isinstance(sessions, SharedSessionService):
            return health.CheckResult("state", True, detail=sessions.describe_stats())
        warnings = list(sessions.restored.warnings) if sessions.restored else []
        if room is not None:
            warnings.append(room)
        return health.CheckResult("state", True, warning="; ".join(warnings))

    disk_paths = [settings.log_dir]
    if settings.state_backend == "pvc":
        disk_paths.insert(0, settings.state_dir)
    checks: dict[str, health.Check] = {
        "state": state_check,
        "model": health.model_check(key_checker),
        "disk": health.disk_check(disk_paths, settings.min_free_disk_bytes),
        "encryption": health.encryption_check(keyring),
    }
    if toolbox is not None:
        checks["tools"] = toolbox_check(toolbox)

    services: Services

    def build_heartbeat() -> dict[str, Any]:
        return heartbeat_payload(services, last_results)

    last_results: dict[str, str] = dict.fromkeys(health.CHECK_NAMES, "ok")
    heartbeat = HeartbeatLoop(
        publisher, build_heartbeat, clock, settings.heartbeat_interval_seconds
    )
    services = Services(
        settings=settings,
        clock=clock,
        metrics=metrics,
        keyring=keyring,
        sessions=sessions,
        turns=Turns(sessions, model, ProfileSource(settings)),
        model=model,
        key_checker=key_checker,
        checks=checks,
        heartbeat=heartbeat,
        limits=limits,
        tokens=tokens,
        client_slots=ClientSlots(settings.max_concurrent_per_client),
        auth_failures=failed_authentications(settings, tokens, clock),
        token_budget=TokenBudget(
            per_client=settings.rate_limit_per_client,
            max_clients=settings.rate_limit_max_clients,
            clock=clock.monotonic,
        ),
        toolbox=toolbox,
    )

    metrics.in_flight.set_function(lambda: services.in_flight)

    async def refresh_health() -> None:
        results = await health.run_checks(checks)
        last_results.update({r.name: r.value for r in results})

    async def heartbeat_loop() -> None:
        while True:
            await refresh_health()
            if isinstance(sessions, SharedSessionService):
                await sessions.refresh_stats(budget=STATS_TIMEOUT_SECONDS)
            await heartbeat.beat()
            await clock.sleep(settings.heartbeat_interval_seconds)

    async def checkpoint_loop() -> None:
        while True:
            await clock.sleep(settings.checkpoint_interval_seconds)
            try:  # first, so that this checkpoint completes their erasure
                await sessions.expire_idle()
            except Exception:
                log.exception("expiring idle sessions failed; they stay until the next try")
            with contextlib.suppress(Exception):  # logged and counted by the service
                await sessions.checkpoint()
            if isinstance(sessions, SharedSessionService):
                try:
                    await sessions.maintain()
                except Exception:
                    log.exception("store maintenance failed; tried again next interval")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await provider.start()
        if toolbox is not None:
            await toolbox.start()
        try:
            await restore(services)
            spawn: list[Coroutine[Any, Any, None]] = [checkpoint_loop(), heartbeat_loop()]
            if isinstance(sessions, SharedSessionService) and sessions.unavailable_reason:
                spawn.append(sessions.run_until_started(RESTART_INTERVAL_SECONDS))
            if settings.model_provider != "builtin":
                try:
                    await asyncio.wait_for(key_checker.refresh(), timeout=5.0)
                except TimeoutError:
                    key_checker.reason = None  # unknown is not invalid: the loop retries
                spawn.append(key_checker.run())
            else:
                key_checker.reason = None
            services.tasks = [asyncio.create_task(c) for c in spawn]
            services.started = True
            log.info(
                "runtime ready",
                extra={
                    "fields": {
                        "state": sessions.store.describe(),
                        "provider": provider.name,
                        "sessions": sessions.session_count,
                    }
                },
            )
            yield
        finally:
            await shutdown(services, refresh_health)
            if toolbox is not None:
                await toolbox.close()
            await provider.close()

    app = web.Application(
        middlewares=[request_context],  # which calls guard (middleware/guard.py)
        client_max_size=settings.max_body_bytes,
    )
    app[SERVICES] = services
    app.add_routes(routes)
    app.add_routes(openai_routes)
    app.add_routes(a2a_routes)
    app.cleanup_ctx.append(lifecycle)
    disclosure.install(app)
    return app


async def restore(services: Services) -> None:
    """Read the previous high-water mark, restore the state, refuse it if it is older.

    The postgres backend restores nothing: it migrates the schema and loads sessions on
    demand; a database not there yet is retried in the background."""
    sessions, metrics = services.sessions, services.metrics
    if isinstance(sessions, SharedSessionService):
        await sessions.start()
        return
    services.previous_mark = await previous_mark(services)
    try:
        restored = await sessions.store.load()
    except StateUnreadable as error:
        sessions.refuse(str(error))
        log.error(
            "stored state is unreadable; serving no sessions and leaving it untouched",
            extra={"fields": {"reason": str(error)}},
        )
        return
    sessions.adopt(restored)
    checkpoint = restored.checkpoint
    if checkpoint is not None and checkpoint.key_id != services.keyring.active_key_id:
        # A rotated key: re-encrypt on the next checkpoint even if nothing else changes,
        # so the state stops depending on the old key (and `rotate-key` sees it happen).
        sessions.dirty = True
    if restored.warnings:
        metrics.restore_fallbacks.inc()
    for warning in restored.warnings:
        log.warning("state restore: %s", warning)
    log.info(
        "state restored",
        extra={
            "fields": {
                "sessions": sessions.session_count,
                "generation": checkpoint.generation if checkpoint else None,
                "journal_entries_replayed": restored.journal_entries_replayed,
            }
        },
    )
    check_rollback(services, restored)


async def previous_mark(services: Services) -> highwater.HighWater | None:
    """The high-water mark of the heartbeat the previous process left, if it can be read."""
    try:
        previous = await services.heartbeat.publisher.last()
    except Exception as error:  # the API is down or forbids it: the check cannot run
        log.warning(
            "rollback check skipped: the previous heartbeat cannot be read",
            extra={"fields": {"error": type(error).__name__}},
        )
        return None
    mark = highwater.from_heartbeat(previous)
    if mark is None:
        log.info(
            "rollback check skipped: no earlier heartbeat carries a high-water mark "
            "(first start, heartbeat off, or a runtime from before the mark)"
        )
    return mark


def check_rollback(services: Services, restored: Restored) -> None:
    """Compare what was restored with the previous mark, and see whether replay found
    records missing between segments; a rollback is logged as an error,
    refused in production unless ACCEPT_STATE_ROLLBACK is set, and a readiness warning
    elsewhere. Refused sessions also mean no checkpoint overwrites the evidence."""
    settings = services.settings
    reason = restored.missing or highwater.rollback(
        restored.position, services.previous_mark, settings.state_set_aside
    )
    if reason is None:
        return
    if settings.environment == "production" and not settings.accept_state_rollback:
        services.sessions.refuse(
            f"{reason}; set {env_name('accept_state_rollback')}=true to serve what was restored"
        )
        log.error("%s; refusing sessions (production)", reason)
        return
    restored.warnings.append(reason)
    why = "accepted by setting" if settings.accept_state_rollback else "refused only in production"
    log.error("%s; serving it (%s)", reason, why)


async def shutdown(services: Services, refresh_health: Any) -> None:
    """After the drain: stop tasks, final checkpoint, final heartbeat, close the store."""
    services.shutting_down = True
    for task in services.tasks:
        task.cancel()
    for task in services.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    try:
        if services.started:
            await services.sessions.checkpoint(force=True)
    except Exception:
        log.error("final checkpoint failed; the journal still holds every acknowledged turn")
    with contextlib.suppress(Exception):
        await refresh_health()
    await services.heartbeat.beat(ready=False)
    with contextlib.suppress(Exception):
        await services.heartbeat.publisher.close()
    await services.sessions.store.close()
    log.info("runtime stopped")


def heartbeat_payload(services: Services, health_values: dict[str, str]) -> dict[str, Any]:
    """The heartbeat JSON of docs/architecture.md."""
    checkpoint = services.sessions.last_checkpoint
    ready = (
        services.started
        and not services.shutting_down
        and all(v == "ok" for v in health_values.values())
    )
    return {
        "v": 1,
        "time": rfc3339(services.clock.now()),
        "ready": ready,
        "circuit": services.model.breaker.state.replace("_", "-"),
        "health": {
            **{name: health_values.get(name, "ok") for name in health.CHECK_NAMES},
            # Reported, not part of "ready": a tool server is not a reason to leave the Service.
            "tools": services.toolbox.heartbeat_value() if services.toolbox else "ok",
        },
        "metrics": services.metrics.summary(),
        **high_water(services),
        "state": state_summary(services),
        "lastCheckpoint": None
        if checkpoint is None
        else {
            "time": rfc3339(checkpoint.time),
            "generation": checkpoint.generation,
            "bytes": checkpoint.bytes,
            "keyId": checkpoint.key_id,
        },
    }


def state_summary(services: Services) -> dict[str, Any]:
    """``state`` of the heartbeat: the backend, its sessions, and its rows under old keys
    (what ``kubectl agent rotate-key`` waits on; see docs/architecture.md)."""
    sessions, active = services.sessions, services.keyring.active_key_id
    if isinstance(sessions, SharedSessionService):
        stats = sessions.stats
        return {
            "backend": "postgres",
            "sessions": None if stats is None else stats.sessions,
            "rowsUnderOldKeys": None if stats is None else stats.rows_under_old_keys,
            "activeKeyId": active,
        }
    checkpoint = sessions.last_checkpoint
    return {
        "backend": services.settings.state_backend,
        "sessions": sessions.session_count,
        "rowsUnderOldKeys": 0 if checkpoint is not None and checkpoint.key_id == active else None,
        "activeKeyId": active,
    }


def high_water(services: Services) -> dict[str, Any]:
    """``highWater`` of the heartbeat: the store's position while sessions are served;
    the previous mark, unchanged, while they are refused (a refused rollback, unreadable
    state), so that a restart does not find the rollback already accepted. The postgres
    backend has none: its durability is the database's."""
    if isinstance(services.sessions, SharedSessionService):
        return {}
    if services.sessions.unavailable_reason is None:
        position = services.sessions.store.position
        mark: highwater.HighWater | None = highwater.HighWater(
            position, services.settings.state_set_aside
        )
    else:
        mark = services.previous_mark
    return {} if mark is None else {highwater.FIELD: mark.to_json()}

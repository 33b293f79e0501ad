"""``serve``: initialise, run until SIGTERM, drain, checkpoint, exit 0.

Initialisation validates the configuration (exit 2 with one line naming the setting),
loads the key ring and self-tests encryption, builds the store (an API client for the
configmap backend) and the heartbeat publisher, then starts the app, whose cleanup
context restores the state before the port opens. SIGTERM or SIGINT: the listener closes,
aiohttp waits for in-flight requests up to ``SHUTDOWN_GRACE_SECONDS``, then the app's
cleanup writes the final checkpoint and the last heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web

from agent_runtime.app import build_store, create_app, record_context
from agent_runtime.config import Settings, check_files
from agent_runtime.crypto import KeyRing
from agent_runtime.heartbeat import HeartbeatPublisher, LeasePublisher, NullPublisher
from agent_runtime.keys import load_keyring
from agent_runtime.secretfiles import warn_about_exposed_secrets
from agent_runtime.state import ConfigMapStore, StateStore

log = logging.getLogger("agent_runtime.lifecycle")


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def build_publisher(settings: Settings) -> HeartbeatPublisher:
    wanted = settings.heartbeat
    if wanted == "none" or (wanted == "auto" and not in_cluster()):
        return NullPublisher()
    from agent_runtime.kube import api_client_from_environment

    return LeasePublisher(
        await api_client_from_environment(),
        namespace=settings.namespace,
        agent=settings.agent_name,
        replica=settings.replica,
        interval_seconds=settings.heartbeat_interval_seconds,
    )


async def build_any_store(settings: Settings, keyring: KeyRing) -> StateStore:
    if settings.state_backend != "configmap":
        return build_store(settings, keyring)
    from agent_runtime.kube import api_client_from_environment

    api = await api_client_from_environment()
    return ConfigMapStore(
        api, settings.namespace, settings.replica, keyring, record_context(settings)
    )


async def run(settings: Settings, *, ready_fd: int | None = None) -> int:
    """Run the runtime until a termination signal; the exit code."""
    check_files(settings)
    warn_about_exposed_secrets(settings)
    keyring = load_keyring(settings)
    store = await build_any_store(settings, keyring)
    publisher = await build_publisher(settings)
    app = create_app(settings, store=store, keyring=keyring, publisher=publisher)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=settings.shutdown_grace_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()  # restores state (cleanup context) before the port opens
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("listening", extra={"fields": {"host": settings.host, "port": settings.port}})
    await stop.wait()
    log.info(
        "termination signal: draining in-flight requests",
        extra={"fields": {"grace_seconds": settings.shutdown_grace_seconds}},
    )
    from agent_runtime.services import SERVICES

    app[SERVICES].shutting_down = True
    await runner.cleanup()
    return 0

"""``serve``: initialise, run until SIGTERM, drain, checkpoint, exit 0.

Initialisation validates the configuration (exit 2 with one line naming the setting),
loads the key ring and self-tests encryption, builds the store (an API client for the
configmap backend) and the heartbeat publisher, then starts the app, whose cleanup
context restores the state before the port opens.

SIGTERM or SIGINT (``stop_gracefully``): first ``/readyz`` fails while requests are still
served, for ``SHUTDOWN_DELAY_SECONDS``. Kubernetes removes a terminating pod from the
Service's endpoints at the same time as it signals it, and kube-proxy, ingress
controllers and load balancers catch up over the next seconds: a listener closed at once
turns the requests they still route into refused connections. The process node of the
local cluster may not run preStop hooks, so the delay lives here, where it works on every
cluster. Then the listener closes, aiohttp waits for in-flight requests up to
``SHUTDOWN_GRACE_SECONDS``, and the app's cleanup writes the final checkpoint and the last
heartbeat. The pod's terminationGracePeriodSeconds covers all three (operator profiles).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent_runtime.app import build_store, create_app, record_context
from agent_runtime.collector import settle_for_serving
from agent_runtime.config import Settings, check_files
from agent_runtime.crypto import KeyRing
from agent_runtime.heartbeat import HeartbeatPublisher, LeasePublisher, NullPublisher
from agent_runtime.keys import load_keyring
from agent_runtime.kubeapi import client_from_environment
from agent_runtime.secretfiles import warn_about_exposed_secrets
from agent_runtime.services import SERVICES
from agent_runtime.state import ConfigMapStore, StateStore

log = logging.getLogger("agent_runtime.lifecycle")

Sleep = Callable[[float], Awaitable[None]]


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def build_publisher(settings: Settings) -> HeartbeatPublisher:
    wanted = settings.heartbeat
    if wanted == "none" or (wanted == "auto" and not in_cluster()):
        return NullPublisher()
    return LeasePublisher(
        client_from_environment(),
        namespace=settings.namespace,
        agent=settings.agent_name,
        replica=settings.replica,
        interval_seconds=settings.heartbeat_interval_seconds,
    )


async def build_any_store(settings: Settings, keyring: KeyRing) -> StateStore | None:
    """The journal store of the backend; None for postgres, whose shared store and session
    service ``create_app`` builds together."""
    if settings.state_backend == "postgres":
        return None
    if settings.state_backend != "configmap":
        return build_store(settings, keyring)
    return ConfigMapStore(
        client_from_environment(),
        settings.namespace,
        settings.replica,
        keyring,
        record_context(settings),
        owns_client=True,
    )


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The server around the app: no access log (the app logs requests itself), the drain
    grace of SIGTERM, and the idle-connection timeout that closes silent sockets."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=settings.shutdown_grace_seconds,
        keepalive_timeout=settings.idle_connection_timeout_seconds,
    )


async def run(settings: Settings, *, ready_fd: int | None = None) -> int:
    """Run the runtime until a termination signal; the exit code."""
    check_files(settings)
    warn_about_exposed_secrets(settings)
    keyring = load_keyring(settings)
    store = await build_any_store(settings, keyring)
    publisher = await build_publisher(settings)
    app = create_app(settings, store=store, keyring=keyring, publisher=publisher)
    runner = make_runner(app, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()  # restores state (cleanup context) before the port opens
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    settle_for_serving()  # start-up's objects out of every later collection (collector.py)
    log.info("listening", extra={"fields": {"host": settings.host, "port": settings.port}})
    await stop.wait()
    await stop_gracefully(app, runner, settings)
    return 0


async def stop_gracefully(
    app: web.Application, runner: web.AppRunner, settings: Settings, sleep: Sleep = asyncio.sleep
) -> None:
    """Unready but serving for the shutdown delay, then stop accepting and drain."""
    delay = settings.effective_shutdown_delay_seconds
    app[SERVICES].shutting_down = True  # /readyz fails from now on; requests are served
    log.info(
        "termination signal: unready, still serving until endpoints are updated",
        extra={"fields": {"delay_seconds": delay}},
    )
    await sleep(delay)
    log.info(
        "closing the listener, draining in-flight requests",
        extra={"fields": {"grace_seconds": settings.shutdown_grace_seconds}},
    )
    await runner.cleanup()

"""Graceful shutdown keeps serving while the pod leaves the endpoints (issue 16: 15).

Checks, on the runner production uses and with the injected clock: after the termination
signal `/readyz` fails at once while turns are still answered for the whole
`SHUTDOWN_DELAY_SECONDS`; only when the delay ends does the listener close (a new
connection is refused) and the drain start. The unset delay follows the environment.
The signal path of the real process is in test_process.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent_runtime.app import create_app, record_context
from agent_runtime.clock import ManualClock
from agent_runtime.crypto import KeyRing
from agent_runtime.lifecycle import stop_gracefully
from agent_runtime.services import SERVICES
from agent_runtime.state import MemoryStore
from tests.support.runtime import make_settings


async def test_after_the_signal_readiness_fails_but_turns_are_served_until_the_delay_ends(
    tmp_path: Path, keyring: KeyRing, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, shutdown_delay_seconds=5)
    store = MemoryStore(keyring, record_context(settings))
    app = create_app(settings, clock=clock, keyring=keyring, store=store)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    async with aiohttp.ClientSession() as http:
        stopping = asyncio.create_task(stop_gracefully(app, runner, settings, sleep=clock.sleep))
        await asyncio.sleep(0)  # the stop runs up to its sleep on the injected clock
        assert app[SERVICES].shutting_down

        async with http.get(f"{base}/readyz?verbose") as ready:
            assert ready.status == 500
            assert "[-]shutdown failed: shutting down" in await ready.text()
        turn = await http.post(f"{base}/v1/sessions/s/messages", json={"content": "2+2"})
        assert turn.status == 200
        assert not stopping.done()

        await clock.advance(5)
        await stopping
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{base}/livez")


@pytest.mark.parametrize(
    ("environment", "expected"), [("development", 0.0), ("staging", 5.0), ("production", 5.0)]
)
def test_the_unset_delay_follows_the_environment(
    tmp_path: Path, environment: str, expected: float
) -> None:
    settings = make_settings(tmp_path, environment=environment, keys_dir=tmp_path)
    assert settings.effective_shutdown_delay_seconds == expected

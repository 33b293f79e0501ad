"""Disk full on the pvc backend (runtime process level, a 2 MiB tmpfs as the volume).

The state directory is a small tmpfs, filled with a ballast file until a few dozen
kilobytes are left. Turns of 4 KiB are sent until the runtime refuses one. The refusal
must be a clear 507 (or 503); no journal file may end in a torn record; freeing the space
must bring turns back without a restart; and after kill -9, a restarted runtime holds
every acknowledged turn and set nothing aside.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from agent_runtime.state import framing
from tests.chaos.conftest import Figure
from tests.support.runtime_process import base_url, environment, free_port, runtime

pytestmark = pytest.mark.chaos

TURN = "x" * 4096


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(volume: Path, leave: int) -> Path:
    """A ballast file that leaves about `leave` bytes free on the volume."""
    ballast = volume / "ballast"
    stat = os.statvfs(volume)
    free = stat.f_bavail * stat.f_frsize
    ballast.write_bytes(b"\0" * max(0, free - leave))
    return ballast


def torn_bytes(state: Path) -> dict[str, int]:
    """Journal files whose end is not a complete record, with the size of the torn tail."""
    torn = {}
    for path in sorted(state.glob("journal-*.agry")):
        _, tail = framing.split(path.read_bytes())
        if tail:
            torn[path.name] = tail
    return torn


async def post(http: aiohttp.ClientSession, base: str, session: str, content: str) -> int:
    async with http.post(f"{base}/v1/sessions/{session}/messages", json={"content": content}) as r:
        body = await r.json()
        if r.status not in (200, 503, 507):
            raise AssertionError(f"unexpected {r.status}: {body}")
        if r.status != 200:
            assert body["error"]["message"], body  # a reason a person can act on
        return r.status


async def test_a_full_volume_refuses_turns_cleanly_and_recovers_when_space_is_freed(
    small_volume: Path, tmp_path: Path, figure: Figure
) -> None:
    env = environment(
        tmp_path,
        free_port(),
        AGENTRY_STATE_DIR=str(small_volume / "state"),
        AGENTRY_MIN_FREE_DISK_BYTES="0",
        AGENTRY_CHECKPOINT_INTERVAL_SECONDS="2",
        AGENTRY_LOG_LEVEL="warning",
    )
    base = base_url(env)
    acknowledged: list[tuple[str, str]] = []
    refusals: list[int] = []
    async with runtime(env) as process, aiohttp.ClientSession() as http:
        ballast = fill(small_volume, leave=48 * 1024)
        for n in range(200):
            session, content = f"s{n % 4}", f"{n} {TURN}"
            status = await post(http, base, session, content)
            if status == 200:
                acknowledged.append((session, content))
            else:
                refusals.append(status)
                if len(refusals) >= 5:
                    break
        assert refusals, "the volume never filled up"
        assert torn_bytes(small_volume / "state") == {}
        async with http.get(f"{base}/readyz?verbose") as response:
            unready = response.status

        ballast.unlink()
        freed = time.monotonic()
        while (status := await post(http, base, "after", "room again")) != 200:
            assert time.monotonic() - freed < 30, f"still {status} 30 s after freeing space"
            await asyncio.sleep(0.2)
        recovered_after = time.monotonic() - freed
        acknowledged.append(("after", "room again"))
        process.send_signal(signal.SIGKILL)
        await process.wait()

    figure("acknowledged_before_full", len(acknowledged) - 1)
    figure("refusal_statuses", sorted(set(refusals)))
    figure("readyz_while_full", unready)
    figure("turn_accepted_after_space_freed_s", round(recovered_after, 2))
    assert unready != 200, "readiness shows the full volume"
    async with runtime(env), aiohttp.ClientSession() as http:
        held: set[tuple[str, str]] = set()
        for session in {s for s, _ in acknowledged}:
            async with http.get(f"{base}/v1/sessions/{session}?limit=1000") as response:
                messages = (await response.json())["messages"]
            held |= {(session, m["content"]) for m in messages if m["role"] == "user"}
    missing = [c[:8] for s, c in acknowledged if (s, c) not in held]
    figure("acknowledged_turns_lost", len(missing))
    assert not missing
    assert not list((small_volume / "state").glob("*.corrupt*")), "recovery set files aside"

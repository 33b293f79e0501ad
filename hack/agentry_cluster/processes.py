"""Starting the cluster's processes detached, and stopping only the ones a cluster started.

Each process runs in its own session with its output in `logs/<name>.log`, so it outlives
`agentry-cluster up`. A pid alone is not proof of ownership (pids are reused): a process
counts as the cluster's only while its command line still names the cluster's state
directory, which every component's arguments do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

# Popen objects of the processes this Python process started: kept so that they are reaped
# (no zombies while a test session waits for them to exit) and never garbage-collected
# while running.
_children: dict[int, subprocess.Popen[bytes]] = {}


def start(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start `args` detached, appending its output to `log`; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _children[proc.pid] = proc
    return proc.pid


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_running(pid: int) -> bool:
    """Alive and not a zombie (reaping it first if it is our child)."""
    proc = _children.get(pid)
    if proc is not None:
        # Our own child: poll() reaps it, and reading /proc as well could race with its exit.
        return proc.poll() is None
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def belongs_to(pid: int, state_dir: Path) -> bool:
    """True while `pid` runs and its command line names `state_dir`."""
    marker = str(state_dir)
    proc = _children.get(pid)
    # Our own child: its arguments are known (its /proc cmdline is empty for a moment after exec).
    args = cast(list[str], proc.args) if proc is not None else cmdline(pid)
    return is_running(pid) and any(marker in arg for arg in args)


def stop(
    pid: int,
    state_dir: Path,
    *,
    grace: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> bool:
    """SIGTERM `pid` if it is this cluster's, SIGKILL after `grace` seconds.

    Returns whether a process was stopped (False: it was not running or not ours).
    """
    if not belongs_to(pid, state_dir):
        if not is_running(pid):
            _children.pop(pid, None)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = clock() + grace
    while is_running(pid) and clock() < deadline:
        pause(0.05)
    if is_running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while is_running(pid):
            pause(0.05)
    if (proc := _children.pop(pid, None)) is not None:
        proc.wait()
    return True


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

"""Stopping processes: only the cluster's own, SIGTERM first, SIGKILL after the grace."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentry_cluster import processes

SLEEPER = "import time; time.sleep(120)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring SIGTERM', flush=True); time.sleep(120)"
)


@pytest.fixture
def started() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:  # never leave a test process behind, whatever the test did
        processes.stop(pid, Path("/"), grace=0)


def start(code: str, state_dir: Path, started: list[int]) -> int:
    pid = processes.start([sys.executable, "-c", code, str(state_dir)], state_dir / "p.log")
    started.append(pid)
    return pid


def wait_for_line(path: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.01)


def test_a_process_of_another_state_directory_is_left_running(
    tmp_path: Path, started: list[int]
) -> None:
    pid = start(SLEEPER, tmp_path / "a", started)
    assert not processes.stop(pid, tmp_path / "b", grace=1)
    assert processes.is_running(pid)


def test_the_clusters_own_process_is_stopped(tmp_path: Path, started: list[int]) -> None:
    pid = start(SLEEPER, tmp_path, started)
    assert processes.belongs_to(pid, tmp_path)
    assert processes.stop(pid, tmp_path, grace=10)
    assert not processes.is_running(pid)


def test_a_process_ignoring_sigterm_is_killed_when_the_grace_runs_out(
    tmp_path: Path, started: list[int]
) -> None:
    pid = start(STUBBORN, tmp_path, started)
    wait_for_line(tmp_path / "p.log", "ignoring SIGTERM")
    ticks = iter([0.0, 0.0, 100.0])  # the grace is over at the first check
    assert processes.stop(pid, tmp_path, grace=30, clock=lambda: next(ticks, 100.0))
    assert not processes.is_running(pid)


def test_a_pid_that_no_longer_exists_is_not_running() -> None:
    assert not processes.is_running(2**22 + 12345)
    assert processes.rss_bytes(2**22 + 12345) == 0


def test_output_goes_to_the_log_file(tmp_path: Path, started: list[int]) -> None:
    pid = start("print('hello from the process')", tmp_path, started)
    wait_for_line(tmp_path / "p.log", "hello from the process")
    assert pid > 0

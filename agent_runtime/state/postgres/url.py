"""Where the store's connection URI comes from: a fixed string, or a file that can change.

On a cluster the URI is a key of the connection Secret, mounted as a file. When the
database's password is rotated, the Secret is updated, the kubelet rewrites the file,
and the store picks up the new URI for its next connections. Nothing restarts and no pod
rolls. Reading the file on every turn would cost a syscall per turn, so it is looked at
again at most every ``check_seconds``, and read only when its size, inode or mtime moved
(the kubelet swaps a symlink, which changes the inode).

A file that cannot be read or does not hold a libpq URI is reported (by its path, never
its content) and the last good URI stays in use: a half-written Secret does not take a
working replica down.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from agent_runtime.config import libpq_url_problem
from agent_runtime.state.errors import StateError

log = logging.getLogger("agent_runtime.state.postgres")

CHECK_SECONDS = 5.0


class ConnectionUrlError(StateError):
    """No usable URI: the file is missing, unreadable or not a postgresql:// URI."""


class ConnectionUrl:
    """The current connection URI; ``current()`` is cheap enough for every pool use."""

    def __init__(
        self,
        url: str | None = None,
        *,
        path: Path | None = None,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (url is None) == (path is None):
            raise ValueError("give either a URI or the path of a file holding one")
        self._url = url
        self._path = path
        self._check_seconds = check_seconds
        self._clock = clock
        self._next_check = float("-inf")
        self._seen: tuple[int, int, int] | None = None

    def current(self) -> str:
        """The URI to connect with; raises ConnectionUrlError only while none was ever good."""
        if self._path is not None and self._clock() >= self._next_check:
            self._next_check = self._clock() + self._check_seconds
            self._reread(self._path)
        if self._url is None:
            raise ConnectionUrlError(f"no connection URI: {self._problem}")
        return self._url

    _problem = "not read yet"

    def _reread(self, path: Path) -> None:
        try:
            stat = os.stat(path)
            seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if seen == self._seen:
                return
            text = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            self._keep_last(f"cannot read {path}: {error.strerror or error}")
            return
        problem = libpq_url_problem(text)
        if problem is not None:
            self._seen = seen  # read again only once it changes
            self._keep_last(f"{path} {problem}")
            return
        if self._url is not None and text != self._url:
            log.info("connection URI changed in %s: new connections use it", path)
        self._url, self._seen = text, seen

    def _keep_last(self, problem: str) -> None:
        """Remember why, and say it once per distinct problem (not every few seconds)."""
        if problem != self._problem and self._url is not None:
            log.warning("%s; the previous connection URI stays in use", problem)
        self._problem = problem

"""Notice that a mounted file changed, cheaply, so settings in it apply without a restart.

A Secret or ConfigMap volume is updated in place by swapping a symlink (``..data``), which
changes the device, inode, size or modification time of the resolved path. ``FileWatch``
compares those with one ``stat`` at most once per ``check_interval`` seconds, on the
request that asks. ``ReloadingFile`` keeps the newest usable version of what a file
holds: a version its reader refuses (a ``ValueError`` naming the line or field) is logged
and ignored, and the previous one stays. Used by ``tokens.CallerTokensFile`` (the tokens) and
``limits.LimitsFile`` (the rate limits).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

FileSignature = tuple[int, int, int, int]  # device, inode, size, mtime in ns


def signature(path: Path) -> FileSignature:
    """What changes when the file (or the file a symlink chain resolves to) is replaced."""
    stat = os.stat(path)  # follows symlinks: a volume's ..data swap shows here
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def read_text(path: Path, error: type[ValueError]) -> str:
    """The file's text; ``error`` naming the path and the kind of failure (never the text)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {exc.__class__.__name__}") from None


class FileWatch:
    """Whether ``path`` changed since the version last read."""

    def __init__(self, path: Path, clock: Callable[[], float], check_interval: float) -> None:
        self.path = path
        self._clock = clock
        self._interval = check_interval
        self._signature = self._stat()
        self._checked_at = clock()

    def _stat(self) -> FileSignature | None:
        try:
            return signature(self.path)
        except OSError:
            return None  # mid-swap or gone: keep what was read and look again later

    def changed(self) -> bool:
        """True once per new version (a bad version is then reported once, not every
        second); False between checks, while the file is missing, or when it is the same."""
        now = self._clock()
        if now - self._checked_at < self._interval:
            return False
        self._checked_at = now
        current = self._stat()
        if current is None or current == self._signature:
            return False
        self._signature = current
        return True


class ReloadingFile(Generic[T]):
    """What ``read`` makes of the file's newest usable version."""

    def __init__(
        self,
        path: Path,
        read: Callable[[Path], T],
        clock: Callable[[], float],
        *,
        log: logging.Logger,
        what: str,
        summary: Callable[[T], dict[str, Any]],
        check_interval: float = 1.0,
    ) -> None:
        """Read the file now; ``read``'s ValueError when it cannot be used (a startup error)."""
        self.path = path
        self._read = read
        self._log = log
        self._what = what
        self._summary = summary
        self._watch = FileWatch(path, clock, check_interval)
        self.value = read(path)

    def reload_if_changed(self) -> T | None:
        """The new value when the file changed to a usable version, else None."""
        if not self._watch.changed():
            return None
        try:
            value = self._read(self.path)
        except ValueError as exc:
            self._log.error(
                f"{self._what} file changed but cannot be used; keeping the previous {self._what}",
                extra={"fields": {"path": str(self.path), "reason": str(exc)}},
            )
            return None
        self.value = value
        self._log.info(
            f"{self._what} file reloaded",
            extra={"fields": {"path": str(self.path), **self._summary(value)}},
        )
        return value

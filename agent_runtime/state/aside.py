"""Moving an unreadable pvc state aside for a fresh start the user accepted (issue 17).

The operator cannot reach files on a volume, so when a user accepts new keys for an Agent
whose old key is lost, it gives the runtime `AGENTRY_STATE_SET_ASIDE=<stamp>`. Before the
store loads, `set_aside` moves every state file into `set-aside-<stamp>/` on the same
volume, once (a marker remembers it, because the setting stays while that key ring
lives). Nothing is deleted: with the old key back, the files can be moved back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_STAMP = re.compile(r"[0-9a-z][0-9a-z-]{0,62}")
PREFIX = "set-aside-"


def set_aside(directory: Path, stamp: str) -> list[str]:
    """Move the state files of `directory` into `set-aside-<stamp>/`; returns their names.

    Does nothing without a stamp, when this stamp was applied before, or for a stamp
    that is not a plain name (it becomes a directory name).
    """
    marker = directory / f".{PREFIX}{stamp}"
    if not _STAMP.fullmatch(stamp) or not directory.is_dir() or marker.exists():
        return []
    target = directory / f"{PREFIX}{stamp}"
    target.mkdir(exist_ok=True)
    moved = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path != marker:
            path.rename(target / path.name)
            moved.append(path.name)
    marker.touch()
    _fsync_directory(target)
    _fsync_directory(directory)
    return moved


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

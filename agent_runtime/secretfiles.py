"""A startup warning for secret files that other users of the machine can read.

The encryption keys (``KEYS_DIR``), the model API key and the callers' tokens are only as
secret as their files' modes. A file readable or writable by others, or by a group the
runtime is not in, is named in a warning (path and mode, never the content). The pod's
own group may read them: the operator mounts the Secrets with mode 0440 and the pod's
``fsGroup``, which the runtime is a member of. Called by ``lifecycle.run`` at startup.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from agent_runtime.config import Settings

log = logging.getLogger("agent_runtime.secretfiles")

_OTHERS = stat.S_IRWXO
_GROUP = stat.S_IRWXG


def secret_files(settings: Settings) -> Iterator[Path]:
    """Every file of a secret the settings name (the key directory's regular files too)."""
    if settings.keys_dir is not None and settings.keys_dir.is_dir():
        yield from sorted(p for p in settings.keys_dir.iterdir() if p.is_file())
    for path in (settings.model_api_key_file, settings.auth_tokens_file):
        if path is not None and path.is_file():
            yield path


def exposed(path: Path) -> bool:
    """Whether anyone beyond this process's user and groups may read or change ``path``."""
    info = path.stat()
    if info.st_mode & _OTHERS:
        return True
    own_groups = {os.getegid(), *os.getgroups()}
    return bool(info.st_mode & _GROUP) and info.st_gid not in own_groups


def warn_about_exposed_secrets(settings: Settings) -> list[Path]:
    """Log one warning per exposed secret file; the files, for callers and tests."""
    found = [path for path in secret_files(settings) if exposed(path)]
    for path in found:
        log.warning(
            "a secret file can be read or changed by other users; make it 0600 or 0400",
            extra={"fields": {"path": str(path), "mode": oct(stat.S_IMODE(path.stat().st_mode))}},
        )
    return found

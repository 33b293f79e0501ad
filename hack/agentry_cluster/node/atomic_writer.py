"""Write a volume's files so a reader never sees half an update, like the kubelet does.

Layout of a volume directory: `..<timestamp>/` holds one complete version, `..data` is a
symlink to it, and every top-level name is a symlink `name -> ..data/name`. An update
writes a new version beside the old one and swaps `..data` with one `rename`; bind mounts
of the directory see the new files at once. Only the node writes these directories.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from agentry_cluster.node.volumes import FileSpec

DATA = "..data"


def _current(directory: Path) -> dict[str, FileSpec] | None:
    link = directory / DATA
    if not link.is_symlink():
        return None
    root = directory / os.readlink(link)
    files: dict[str, FileSpec] = {}
    for path in root.rglob("*"):
        if path.is_file():
            files[str(path.relative_to(root))] = FileSpec(
                path.read_bytes(), path.stat().st_mode & 0o7777
            )
    return files


def _check_paths(files: Mapping[str, FileSpec]) -> None:
    for rel in files:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts or parts[0].startswith(".."):
            raise ValueError(f"volume file path {rel!r} must be relative and stay inside")


def write_volume(directory: Path, files: Mapping[str, FileSpec]) -> bool:
    """Make `directory` hold exactly `files`; return whether anything changed."""
    _check_paths(files)
    directory.mkdir(parents=True, exist_ok=True)
    old = _current(directory)
    if old == dict(files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9}"
    version = directory / stamp
    version.mkdir(mode=0o755)
    for rel, spec in files.items():
        target = version / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(spec.data)
        target.chmod(spec.mode)
    old_target = os.readlink(directory / DATA) if (directory / DATA).is_symlink() else None
    tmp_link = directory / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    tmp_link.symlink_to(stamp)
    tmp_link.replace(directory / DATA)
    top = {Path(rel).parts[0] for rel in files}
    for name in top:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"{DATA}/{name}")
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in top:
            entry.unlink()
    if old_target is not None:
        shutil.rmtree(directory / old_target, ignore_errors=True)
    return True

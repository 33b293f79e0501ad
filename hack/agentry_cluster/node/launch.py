"""The first process of every container, already inside the pod's network, mount and UTS
namespaces (`ip netns exec NS unshare --mount --uts --propagation private python -m
agentry_cluster.node.launch SPEC`): it makes the pod's mounts, sets the host name, changes
to the working directory and `exec`s the container's command with the pod's environment,
so the container's process keeps this PID and the node's signals reach it.

Only the standard library: it runs once per container start and must be quick.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import socket
import sys
from typing import IO, Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384


def _libc_mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    enc = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _makedirs(path: str, record: IO[str] | None) -> None:
    """`os.makedirs`, noting each directory it creates: a mount point made on the host's
    file system is visible there, and the node removes the empty ones when it stops."""
    missing: list[str] = []
    while path and not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.makedirs(directory, exist_ok=True)
    if record is not None and missing:
        record.write("".join(f"{d}\n" for d in missing))
        record.flush()


def _prepare_target(is_file: bool, target: str, record: IO[str] | None) -> None:
    """Mount points must exist; a file source needs a file to mount over."""
    if is_file:
        _makedirs(os.path.dirname(target) or "/", record)
        if not os.path.exists(target):
            with open(target, "a"):
                pass
            if record is not None:
                record.write(f"{target}\n")
                record.flush()
    else:
        _makedirs(target, record)


def make_mounts(mounts: list[dict[str, Any]], record: IO[str] | None = None) -> None:
    """Open every source first, then mount: an earlier mount (an emptyDir over /tmp) may
    cover the host path of a later source (a cluster state directory under /tmp)."""
    sources: list[tuple[int, bool] | None] = []
    for m in mounts:
        if m["source"] is None:
            sources.append(None)
            continue
        if not os.path.exists(m["source"]):
            os.makedirs(m["source"], exist_ok=True)
        fd = os.open(m["source"], os.O_PATH | os.O_CLOEXEC)
        sources.append((fd, os.path.isfile(m["source"])))
    for m, opened in zip(mounts, sources, strict=True):
        target, read_only = m["target"], bool(m["readOnly"])
        if opened is None:
            _prepare_target(False, target, record)
            _libc_mount("tmpfs", target, "tmpfs", 0, "mode=0755")
            continue
        fd, is_file = opened
        _prepare_target(is_file, target, record)
        _libc_mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC, None)
        if read_only:
            _libc_mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        os.close(fd)


def keep_visible(kept: dict[str, int], mounts: list[dict[str, Any]]) -> None:
    """Bind each kept path back where a pod mount hid it (see `NODE_SOFTWARE` in pods.py).

    `kept` maps each path to an fd the caller opened before any mount; a path whose
    ancestor (or itself) became a mount target is bound again, read-only, at its own path.
    """
    targets = [m["target"].rstrip("/") or "/" for m in mounts]
    for path, fd in kept.items():
        if any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets):
            _makedirs(path, None)
            _libc_mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
            _libc_mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        spec = json.load(f)
    try:
        # Opened before any mount, which could cover its path.
        kept = {
            path: os.open(path, os.O_PATH | os.O_CLOEXEC)
            for path in spec.get("keepVisible") or []
            if os.path.isdir(path)
        }
        with open(spec.get("mountPointRecord") or os.devnull, "a") as record:
            make_mounts(spec["mounts"], record)
        keep_visible(kept, spec["mounts"])
        if spec.get("hostname"):
            socket.sethostname(spec["hostname"])
        os.chdir(spec.get("workingDir") or "/")
    except OSError as exc:
        print(f"agentry node: cannot set up the container: {exc}", file=sys.stderr, flush=True)
        return 128
    argv_out: list[str] = spec["argv"]
    try:
        os.execvpe(argv_out[0], argv_out, spec["env"])  # noqa: S606 - the container command
    except OSError as exc:
        print(f"agentry node: cannot run {argv_out[0]!r}: {exc}", file=sys.stderr, flush=True)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))

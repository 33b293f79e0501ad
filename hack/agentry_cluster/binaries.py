"""The cluster's binaries: found in the cache that `hack/build-binaries.sh` fills, built
with it when missing or out of date (the script decides; it is quick when nothing changed).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from agentry_cluster.errors import CannotRunHere, ClusterError

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build-binaries.sh"
REQUIRED = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-proxy",
    "kubectl",
    "helm",
    "coredns",
)


def cache_dir() -> Path:
    """Where the binaries are (or will be) for the pinned versions; builds nothing."""
    out = subprocess.run(
        [str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def missing(bin_dir: Path) -> list[str]:
    return [name for name in REQUIRED if not (bin_dir / name).is_file()]


def ensure() -> Path:
    """The binary directory, building first if needed (progress goes to stderr).

    Builds are serialised with a lock next to the cache, so two callers never run two
    builds at once.
    """
    bin_dir = cache_dir()
    lock_path = bin_dir.parent / ".build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if shutil.which("go") is None:
                if absent := missing(bin_dir):
                    raise CannotRunHere(
                        f"cluster binaries {', '.join(absent)} are missing in {bin_dir} and "
                        "Go is not installed to build them (https://go.dev/dl)"
                    )
                return bin_dir  # cannot check the pinned versions without Go: use what is there
            result = subprocess.run([str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if result.returncode != 0:
        raise ClusterError(f"building the cluster binaries failed ({BUILD_SCRIPT})")
    built = Path(result.stdout.strip().splitlines()[-1])
    if absent := missing(built):
        raise ClusterError(f"{built} lacks {', '.join(absent)} after the build")
    return built

"""The local cluster's errors: one hierarchy, so the CLI and the pytest plugin can tell a
machine that cannot run the cluster (no root, no Go) from a cluster that failed to start."""

from __future__ import annotations


class ClusterError(Exception):
    """Something the user must act on; the message says what and where to look."""


class CannotRunHere(ClusterError):
    """This machine cannot run the cluster at all (no root, no Go toolchain to build with)."""


class NotRoot(CannotRunHere):
    """Bridges, network namespaces and mounts need root."""

    def __init__(self) -> None:
        super().__init__(
            "the local cluster needs root (it creates a network bridge, namespaces and mounts)"
        )


class StartFailed(ClusterError):
    """A component did not come up; the message names its log file."""


class AlreadyRunning(ClusterError):
    """`up` on a state directory whose cluster is still running."""

"""Errors of the process node: what went wrong with one pod, or with the node itself."""

from __future__ import annotations

from agentry_cluster.errors import ClusterError


class NodeError(ClusterError):
    """The node cannot run at all (no root, no cluster.json, no credentials)."""


class ContainerConfigError(Exception):
    """A container cannot start yet: a referenced Secret, ConfigMap or key is missing.

    The kubelet reports this as waiting reason `CreateContainerConfigError` and retries.
    """

"""What the commands need from a cluster, as a protocol.

Commands see plain dicts shaped exactly like the API server's JSON (camelCase), so unit
tests feed recorded objects to a fake that implements this protocol, and `kube.py`
implements it with the `kubernetes` client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class LogOptions:
    """Options of one pod log request (the API's query parameters)."""

    container: str | None = None
    since_seconds: int | None = None
    previous: bool = False
    tail_lines: int | None = None


@dataclass
class HttpReply:
    """A response relayed by the API server's service proxy."""

    status: int
    reason: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """A streamed response relayed by the API server's proxy: status, then its lines."""

    status: int
    reason: str
    headers: dict[str, str]
    lines: Iterator[bytes]


class Cluster(Protocol):
    """The Kubernetes reads and writes of the plugin; errors are `CliError`s."""

    @property
    def namespace(self) -> str:
        """The namespace used when -n is not given (from the kubeconfig context)."""
        ...

    def get_agent(self, namespace: str, name: str) -> Obj: ...

    def patch_agent(self, namespace: str, name: str, patch: Obj) -> Obj: ...

    def list_leases(self, namespace: str) -> list[Obj]: ...

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]: ...

    def read_log(self, namespace: str, pod: str, options: LogOptions) -> str: ...

    def follow_log(self, namespace: str, pod: str, options: LogOptions) -> Iterator[str]: ...

    def get_statefulset(self, namespace: str, name: str) -> Obj: ...

    def patch_statefulset(self, namespace: str, name: str, patch: Obj) -> Obj: ...

    def get_secret(self, namespace: str, name: str) -> Obj: ...

    def patch_secret(self, namespace: str, name: str, patch: Obj) -> Obj: ...

    def create_secret(self, namespace: str, body: Obj) -> Obj: ...

    def stream_through_proxy(
        self, namespace: str, target: str, port: str, path: str, body: Obj, headers: dict[str, str]
    ) -> StreamReply: ...

    def get_through_proxy(
        self, namespace: str, target: str, port: str, path: str, headers: dict[str, str]
    ) -> HttpReply: ...

    def post_through_proxy(
        self, namespace: str, target: str, port: str, path: str, body: Obj, headers: dict[str, str]
    ) -> HttpReply: ...

"""The heartbeat: a compact health and metrics summary the operator reads from a Lease.

``HeartbeatPublisher`` is the interface; ``LeasePublisher`` writes the Lease
``<replica>-heartbeat`` (coordination.k8s.io/v1) with the JSON of docs/architecture.md in
the ``agentry.dev/heartbeat`` annotation, creating it or merge-patching it; ``NullPublisher``
is used outside a cluster. ``HeartbeatLoop`` publishes every interval, and once more on
shutdown with ``ready: false`` and the final checkpoint. Every Lease call has a deadline:
an API server that never answers must cost one missed beat, not the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from agent_runtime.clock import Clock
from agent_runtime.kube import REQUEST_TIMEOUT_SECONDS

log = logging.getLogger("agent_runtime.heartbeat")

ANNOTATION = "agentry.dev/heartbeat"
LABELS_BASE = {
    "app.kubernetes.io/name": "agentry-agent",
    "app.kubernetes.io/managed-by": "agentry-operator",
    "app.kubernetes.io/part-of": "agentry",
}


T = TypeVar("T")


class LeaseTimeout(TimeoutError):
    """The API server did not answer a Lease call within the deadline."""


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class HeartbeatPublisher(Protocol):
    async def publish(self, heartbeat: dict[str, Any], now: datetime) -> None:
        """Store one heartbeat; raise on failure (the loop logs and carries on)."""

    async def last(self) -> dict[str, Any] | None:
        """The heartbeat stored before this process (None if none); raise when unknown.

        Read once at startup: its high-water mark is the check against a rollback."""

    async def close(self) -> None: ...


class NullPublisher:
    """Outside a cluster: remember the last heartbeat (tests and check-config read it)."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    async def publish(self, heartbeat: dict[str, Any], now: datetime) -> None:
        self.published.append(heartbeat)
        del self.published[:-10]

    async def last(self) -> dict[str, Any] | None:
        """The newest beat this publisher kept: a test shares one publisher between two
        app instances to play the Lease that outlives a restart."""
        return self.published[-1] if self.published else None

    async def close(self) -> None:
        return None


class LeasePublisher:
    """Create-or-replace the Lease ``<replica>-heartbeat`` in the Agent's namespace."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str,
        agent: str,
        replica: str,
        interval_seconds: float,
        owns_client: bool = True,
        request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        from kubernetes_asyncio import client

        self._api_client = api_client
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.agent = agent
        self.replica = replica
        self.name = f"{replica}-heartbeat"
        self._duration = max(1, round(3 * interval_seconds))
        self._owns_client = owns_client
        self._timeout = request_timeout_seconds

    async def _within_deadline(self, verb: str, call: Awaitable[T]) -> T:
        """Await one API call, giving up after the deadline (the client sets none: a cut
        connection waited on TCP retransmissions, and the loop with it)."""
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError as error:
            raise LeaseTimeout(
                f"cannot {verb} lease {self.namespace}/{self.name}: "
                f"the API server did not answer within {self._timeout:g}s"
            ) from error

    def _body(self, heartbeat: dict[str, Any], now: datetime) -> dict[str, Any]:
        labels = dict(LABELS_BASE)
        labels["app.kubernetes.io/instance"] = self.agent
        labels["agentry.dev/agent"] = self.agent
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": labels,
            "annotations": {ANNOTATION: json.dumps(heartbeat, separators=(",", ":"))},
        }
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.replica,
                "leaseDurationSeconds": self._duration,
                "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }

    async def publish(self, heartbeat: dict[str, Any], now: datetime) -> None:
        """Merge-patch the Lease, creating it on the first beat (or after someone deleted it).

        A merge patch rather than a replace: no resourceVersion round trip, no conflict
        with an operator that labels the object, and the Role grants ``patch`` by name.
        """
        from kubernetes_asyncio.client.exceptions import ApiException

        body = self._body(heartbeat, now)
        try:
            await self._patch(body)
            return
        except ApiException as error:
            if error.status != 404:
                raise
        try:
            created = self._api.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
            await self._within_deadline("create", created)
        except ApiException as error:
            if error.status != 409:  # created meanwhile by an older instance of this pod
                raise
            await self._patch(body)

    async def last(self) -> dict[str, Any] | None:
        """The annotation of the Lease as the previous process left it; None when there is
        no Lease or no readable annotation (a first start, or someone deleted it)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            read = self._api.read_namespaced_lease(self.name, self.namespace)
            lease = await self._within_deadline("read", read)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        text = (lease.metadata.annotations or {}).get(ANNOTATION)
        try:
            heartbeat = json.loads(text) if text else None
        except json.JSONDecodeError:
            return None
        return heartbeat if isinstance(heartbeat, dict) else None

    async def _patch(self, body: dict[str, Any]) -> None:
        patched = self._api.patch_namespaced_lease(
            self.name,
            self.namespace,
            body,
            _content_type="application/merge-patch+json",  # type: ignore[call-arg]
        )
        await self._within_deadline("patch", patched)

    async def close(self) -> None:
        if self._owns_client:
            await self._api_client.close()


class HeartbeatLoop:
    """Publishes ``build()`` every ``interval`` seconds; failures are logged, never fatal."""

    def __init__(
        self,
        publisher: HeartbeatPublisher,
        build: Callable[[], dict[str, Any]],
        clock: Clock,
        interval: float,
    ) -> None:
        self.publisher = publisher
        self._build = build
        self._clock = clock
        self._interval = interval
        self.failures = 0

    async def beat(self, **overrides: Any) -> bool:
        heartbeat = self._build()
        heartbeat.update(overrides)
        try:
            await self.publisher.publish(heartbeat, self._clock.now())
        except Exception as error:
            self.failures += 1
            log.warning(
                "heartbeat not published",
                extra={"fields": {"error": type(error).__name__, "failures": self.failures}},
            )
            return False
        return True

    async def run(self) -> None:
        while True:
            await self.beat()
            await self._clock.sleep(self._interval)

"""The heartbeat: a compact health and metrics summary the operator reads from a Lease.

``HeartbeatPublisher`` is the interface; ``LeasePublisher`` writes the Lease
``<replica>-heartbeat`` (coordination.k8s.io/v1) with the JSON of docs/architecture.md in
the ``agentry.dev/heartbeat`` annotation, creating it or merge-patching it; ``NullPublisher``
is used outside a cluster. ``HeartbeatLoop`` publishes every interval, and once more on
shutdown with ``ready: false`` and the final checkpoint. Every Lease call has a deadline:
an API server that never answers must cost one missed beat, not the loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from agent_runtime.clock import Clock
from agent_runtime.kubeapi import (
    MERGE_PATCH,
    REQUEST_TIMEOUT_SECONDS,
    ApiUnreachable,
    KubeClient,
    Response,
)

log = logging.getLogger("agent_runtime.heartbeat")

ANNOTATION = "agentry.dev/heartbeat"
LABELS_BASE = {
    "app.kubernetes.io/name": "agentry-agent",
    "app.kubernetes.io/managed-by": "agentry-operator",
    "app.kubernetes.io/part-of": "agentry",
}


class LeaseError(Exception):
    """A Lease call failed: the API server refused it, or could not be reached."""


class LeaseTimeout(LeaseError, TimeoutError):
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
        api: KubeClient,
        *,
        namespace: str,
        agent: str,
        replica: str,
        interval_seconds: float,
        owns_client: bool = True,
        request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.agent = agent
        self.replica = replica
        self.name = f"{replica}-heartbeat"
        self._leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._duration = max(1, round(3 * interval_seconds))
        self._owns_client = owns_client
        self._timeout = request_timeout_seconds

    async def _call(
        self,
        verb: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """One API call within the deadline (an API server that never answers must cost
        one missed beat, not the loop); the answer, whatever its status."""
        try:
            return await self._api.request(
                method, path, body, content_type=content_type, timeout_seconds=self._timeout
            )
        except ApiUnreachable as error:
            kind = LeaseTimeout if error.timed_out else LeaseError
            raise kind(f"cannot {verb} lease {self.namespace}/{self.name}: {error}") from error

    def _refused(self, verb: str, answer: Response) -> LeaseError:
        return LeaseError(f"cannot {verb} lease {self.namespace}/{self.name}: {answer.describe()}")

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
        body = self._body(heartbeat, now)
        if await self._patch(body):
            return
        created = await self._call("create", "POST", self._leases, body)
        if created.ok:
            return
        if created.status != 409:  # 409: created meanwhile by an older instance of this pod
            raise self._refused("create", created)
        if not await self._patch(body):
            raise LeaseError(
                f"cannot patch lease {self.namespace}/{self.name}: deleted while being created"
            )

    async def last(self) -> dict[str, Any] | None:
        """The annotation of the Lease as the previous process left it; None when there is
        no Lease or no readable annotation (a first start, or someone deleted it)."""
        answer = await self._call("read", "GET", f"{self._leases}/{self.name}")
        if answer.status == 404:
            return None
        if not answer.ok:
            raise self._refused("read", answer)
        annotations = (answer.body.get("metadata") or {}).get("annotations") or {}
        text = annotations.get(ANNOTATION)
        try:
            heartbeat = json.loads(text) if text else None
        except json.JSONDecodeError:
            return None
        return heartbeat if isinstance(heartbeat, dict) else None

    async def _patch(self, body: dict[str, Any]) -> bool:
        """Merge-patch the Lease; False when it does not exist."""
        path = f"{self._leases}/{self.name}"
        answer = await self._call("patch", "PATCH", path, body, MERGE_PATCH)
        if answer.status == 404:
            return False
        if not answer.ok:
            raise self._refused("patch", answer)
        return True

    async def close(self) -> None:
        if self._owns_client:
            await self._api.close()


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
            fields: dict[str, Any] = {"error": type(error).__name__, "failures": self.failures}
            if isinstance(error, LeaseError):  # our own words: no token, no body
                fields["reason"] = str(error)
            log.warning("heartbeat not published", extra={"fields": fields})
            return False
        return True

    async def run(self) -> None:
        while True:
            await self.beat()
            await self._clock.sleep(self._interval)

"""The operator's watches of its children and of the heartbeat Leases: one `Stream` per
kind (per watched namespace when the operator is namespaced), filtered by our labels on
the server, feeding `Children` (the drift check, and what was seen) and `Seen`.

Started from kopf's startup handler and waited for until every first list is complete,
so that the safety net's count of the children and the status's heartbeats are never
short when the Agents' handlers start (kopf indexes gave the same guarantee). Stopped
from kopf's cleanup handler, before the client they use is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from agentry_operator.seen import ObjectKey
from agentry_operator.streams import Client, Sink, Stream
from agentry_operator.watching import HEARTBEATS, SELECTOR, WATCHED, Children

logger = logging.getLogger(__name__)


def collection(group: str, version: str, plural: str, namespace: str | None) -> str:
    """The API path of a collection: in one namespace, or across the cluster (None)."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


class ChildSink:
    """A watched child kind's events: recorded, and checked for drift."""

    def __init__(self, children: Children, kind: str) -> None:
        self.children = children
        self.kind = kind

    def changed(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        if self.children.event(self.kind, event_type, obj):
            meta = obj.get("metadata") or {}
            _log_drift(self.kind, f"{meta.get('namespace')}/{meta.get('name')}", event_type)

    def listed(self, namespace: str | None, present: set[ObjectKey]) -> None:
        for name in self.children.listed(self.kind, namespace, present):
            _log_drift(self.kind, name, "DELETED")


class BeatSink:
    """The heartbeat Leases' events, recorded for the status."""

    def __init__(self, children: Children) -> None:
        self.seen = children.seen

    def changed(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        self.seen.beat(event_type, obj)

    def listed(self, namespace: str | None, present: set[ObjectKey]) -> None:
        self.seen.beats_gone(namespace, present)


def _log_drift(kind: str, name: str, event_type: str | None) -> None:
    logger.info(
        "%s %s drifted (%s); converging its Agent", kind, name, (event_type or "listed").lower()
    )


class Watches:
    """Every stream of the operator, started and stopped together."""

    def __init__(self, client: Client, children: Children, namespaces: list[str]) -> None:
        scopes: list[str | None] = list(namespaces) or [None]
        sinks: list[tuple[tuple[str, str, str], Sink]] = [
            (resource, ChildSink(children, kind)) for kind, resource in WATCHED.items()
        ]
        sinks.append((HEARTBEATS, BeatSink(children)))
        self.streams = [
            Stream(client, collection(*resource, ns), SELECTOR, sink, namespace=ns)
            for resource, sink in sinks
            for ns in scopes
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Run every stream in a task of its own (once)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(stream.run(), name=f"agentry-watch {stream.path}")
                for stream in self.streams
            ]

    async def synced(self) -> None:
        """Wait until every stream's first list is complete."""
        await asyncio.gather(*(stream.ready.wait() for stream in self.streams))

    async def stop(self) -> None:
        """Cancel every stream and wait until each has ended."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

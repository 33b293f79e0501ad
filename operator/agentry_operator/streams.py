"""One label-filtered list+watch of one resource, kept in step with the API server.

The operator's children are watched with its own client, not kopf: kopf keeps a record
per watched object (its memory of the object, a copy of the memo, a throttler, indexes)
and runs its per-event machinery for each, about 12 MB and most of the operator's CPU
for 1,000 Agents' ten-odd children each. A `Stream` keeps nothing per object; its `Sink`
keeps what it needs.

The protocol is client-go's reflector: list (in pages) and hand every object to the sink
as listed, tell the sink which objects the list had (everything else is gone), then watch
from the list's resourceVersion with bookmarks, so that a watch ended by the server (its
timeout) resumes where it stopped. 410 Gone, from the watch or a page's expired continue
token, means that version is too old: list again. Any other failure waits (1 s doubling to
30 s, jittered) and resumes the watch from the last version seen. So does a watch that the
server ends within a second of opening it, though it is no error: a server that keeps
doing so is asked again 1, 2, 4 … 30 s apart, not in a tight loop.

Nothing here touches kopf.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from agentry_operator.kube import KubeError

logger = logging.getLogger(__name__)

PAGE_SIZE = 500  # a list's page: 1,000 Agents' ConfigMaps are not one 10 MB response
WATCH_SECONDS = 300  # the server ends each watch after about this long (spread ±10 %)
READ_MARGIN_SECONDS = 60  # a watch silent this much longer than its timeout is dead
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
SHORT_WATCH_SECONDS = 1.0  # a watch the server ends sooner waits like a failure
ObjectKey = tuple[str, str]  # (namespace, name)


class Client(Protocol):
    """The two calls a stream makes (`kube.Kube` in the operator, a fake in tests)."""

    async def list_page(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]: ...

    def watch(
        self, path: str, query: list[tuple[str, str]], *, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]: ...


class Sink(Protocol):
    """Where a stream's objects go."""

    def changed(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """One object: listed (None), or ADDED, MODIFIED, DELETED by a watch event."""

    def listed(self, namespace: str | None, present: set[ObjectKey]) -> None:
        """A list is complete: in `namespace` (None: everywhere) only `present` exist."""


class Gone(Exception):
    """410: the resourceVersion asked for is too old; only a new list helps."""


def backoff(failures: int, rand: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after `failures` failures in a row: 1, 2, 4 … 30, jittered ±20 %."""
    base = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, failures - 1))
    return float(base * rand(0.8, 1.2))


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Stream:
    """List+watch of the collection at `path` filtered by `selector`, into `sink`.

    `ready` is set once the first list is complete: the sink then knows every object.
    """

    def __init__(
        self,
        client: Client,
        path: str,
        selector: str,
        sink: Sink,
        *,
        namespace: str | None = None,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.client = client
        self.path = path
        self.selector = selector
        self.sink = sink
        self.namespace = namespace
        self.ready = asyncio.Event()
        self.version: str | None = None  # the last resourceVersion seen; None: list first
        self.lists = 0
        self._rand = rand

    async def run(self) -> None:
        """Forever (until cancelled): list when needed, then watch; wait after failures."""
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.version is None:
                    await self._list()
                opened = loop.time()
                await self._watch()
                if loop.time() - opened >= SHORT_WATCH_SECONDS:
                    failures = 0
                    continue
                failures += 1
                wait = backoff(failures, self._rand)
                logger.debug("watch %s ended at once; again in %.1f s", self.path, wait)
                await asyncio.sleep(wait)
            except Gone:
                logger.info("watch %s: resourceVersion too old, listing again", self.path)
                self.version = None
            except (KubeError, ValueError) as exc:
                failures += 1
                wait = backoff(failures, self._rand)
                logger.warning("watch %s failed (%s); again in %.0f s", self.path, exc, wait)
                await asyncio.sleep(wait)
            except Exception:
                # A bug, not the server: the sink may have missed an object, so list again.
                failures += 1
                logger.exception("watch %s: unexpected failure; listing again", self.path)
                self.version = None
                await asyncio.sleep(backoff(failures, self._rand))

    async def _list(self) -> None:
        present: set[ObjectKey] = set()
        token = ""
        while True:
            query = [("labelSelector", self.selector), ("limit", str(PAGE_SIZE))]
            if token:
                query.append(("continue", token))
            try:
                page = await self.client.list_page(self.path, query)
            except KubeError as exc:
                if exc.status == 410:  # the continue token expired
                    raise Gone from exc
                raise
            for obj in page.get("items") or ():
                present.add(object_key(obj))
                self.sink.changed(None, obj)
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                break
        self.sink.listed(self.namespace, present)
        self.version = str(meta.get("resourceVersion") or "")
        self.lists += 1
        self.ready.set()

    async def _watch(self) -> None:
        seconds = round(WATCH_SECONDS * self._rand(0.9, 1.1))
        query = [
            ("labelSelector", self.selector),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        if self.version:
            query.append(("resourceVersion", self.version))
        events = self.client.watch(self.path, query, read_timeout=seconds + READ_MARGIN_SECONDS)
        async for event in events:
            self._take(event)

    def _take(self, event: Mapping[str, Any]) -> None:
        event_type, obj = event.get("type"), event.get("object") or {}
        if event_type == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise Gone()
            raise KubeError(f"watch {self.path}: {obj.get('message', 'error')}", code)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if event_type in ("ADDED", "MODIFIED", "DELETED"):
            self.sink.changed(event_type, obj)
        if version:
            self.version = str(version)

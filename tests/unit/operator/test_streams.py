"""One list+watch (streams.py) against a scripted API server, on fake loop time: listed
in pages, then watched from the list's version; a bookmark moves the version on; a watch
the server ends resumes from the last version; 410 Gone lists again and what the new list
lacks is gone; other failures back off; cancelling stops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from agentry_operator.kube import KubeError
from agentry_operator.streams import Stream, backoff

pytestmark = pytest.mark.looptime

PATH = "/api/v1/configmaps"


def obj(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


@dataclass
class Server:
    """Lists return `pages` in turn (then `relist`); each watch plays the next script:
    a list of events, or an exception to raise, then ends (or hangs when `hang`)."""

    pages: list[dict[str, Any]]
    watches: list[list[dict[str, Any]] | Exception] = field(default_factory=list)
    relist: list[dict[str, Any]] = field(default_factory=list)
    listed: list[list[tuple[str, str]]] = field(default_factory=list)
    watched: list[dict[str, str]] = field(default_factory=list)
    hang: asyncio.Event = field(default_factory=asyncio.Event)

    async def list_page(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        self.listed.append(query)
        return self.pages.pop(0) if self.pages else self.relist.pop(0)

    async def watch(
        self, path: str, query: list[tuple[str, str]], *, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        self.watched.append(dict(query))
        if not self.watches:
            await self.hang.wait()
            return
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event


@dataclass
class Sink:
    events: list[tuple[str | None, str]] = field(default_factory=list)
    complete: list[tuple[str | None, set[tuple[str, str]]]] = field(default_factory=list)

    def changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self.events.append((event_type, body["metadata"]["name"]))

    def listed(self, namespace: str | None, present: set[tuple[str, str]]) -> None:
        self.complete.append((namespace, present))


async def running(server: Server, sink: Sink, until: float = 10.0) -> Stream:
    stream = Stream(server, PATH, "sel", sink, rand=lambda low, high: 1.0)
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(until)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return stream


def page(names: list[str], version: str = "10", token: str = "") -> dict[str, Any]:
    meta = {"resourceVersion": version, "continue": token}
    return {"metadata": meta, "items": [obj(n, "5") for n in names]}


async def test_listed_in_pages_then_watched_from_the_lists_version() -> None:
    server = Server(pages=[page(["a", "b"], token="t1"), page(["c"], version="10")])
    server.watches = [[{"type": "ADDED", "object": obj("d", "11")}]]
    sink = Sink()
    stream = await running(server, sink)
    assert server.listed[0] == [("labelSelector", "sel"), ("limit", "500")]
    assert ("continue", "t1") in server.listed[1]
    assert sink.events == [(None, "a"), (None, "b"), (None, "c"), ("ADDED", "d")]
    assert sink.complete == [(None, {("ns", "a"), ("ns", "b"), ("ns", "c")})]
    assert server.watched[0]["resourceVersion"] == "10"
    assert server.watched[0]["allowWatchBookmarks"] == "true"
    # The first watch ended (the server's timeout): the next resumes after event d.
    assert server.watched[1]["resourceVersion"] == "11"
    assert stream.ready.is_set()
    assert stream.lists == 1


async def test_a_bookmark_moves_the_version_on_without_an_event() -> None:
    server = Server(pages=[page([])])
    server.watches = [[{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}]]
    sink = Sink()
    await running(server, sink)
    assert sink.events == []
    assert server.watched[1]["resourceVersion"] == "42"


async def test_gone_lists_again_and_what_the_new_list_lacks_is_gone() -> None:
    server = Server(pages=[page(["a", "b"])], relist=[page(["b"], version="50")])
    too_old = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    server.watches = [[too_old]]
    sink = Sink()
    stream = await running(server, sink)
    assert stream.lists == 2
    assert sink.complete[-1] == (None, {("ns", "b")})
    assert server.watched[-1]["resourceVersion"] == "50"


async def test_an_expired_continue_token_lists_from_the_start() -> None:
    server = Server(pages=[page(["a"], token="t1")], relist=[page(["a", "b"])])
    expired = KubeError("GET: 410 Gone", 410)
    calls = 0
    list_page = server.list_page

    async def flaky(path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise expired
        return await list_page(path, query)

    server.list_page = flaky  # type: ignore[method-assign]
    sink = Sink()
    await running(server, sink)
    assert sink.complete == [(None, {("ns", "a"), ("ns", "b")})]


async def test_failures_back_off_and_resume_from_the_last_version() -> None:
    server = Server(pages=[page(["a"], version="7")])
    server.watches = [KubeError("refused", 0), KubeError("refused", 0), KubeError("boom", 500)]
    sink = Sink()
    started = asyncio.get_running_loop().time()
    await running(server, sink, until=6.5)
    # 1 + 2 + 4 s of backoff: the fourth watch started at 7 s, after the cut at 6.5 s.
    assert len(server.watched) == 3
    assert all(w["resourceVersion"] == "7" for w in server.watched)
    assert asyncio.get_running_loop().time() - started == pytest.approx(6.5)
    assert len(server.listed) == 1


def test_backoff_doubles_to_a_cap_and_is_jittered() -> None:
    middle = [backoff(n, lambda low, high: 1.0) for n in (1, 2, 3, 6, 20)]
    assert middle == [1, 2, 4, 30, 30]
    assert backoff(1, lambda low, high: low) == pytest.approx(0.8)


async def test_a_failing_sink_is_logged_and_the_stream_lists_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server(pages=[page(["a"])], relist=[page(["a"])])
    server.watches = [[{"type": "ADDED", "object": {"metadata": {"name": "bad"}}}]]

    class Failing(Sink):
        def changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
            if body["metadata"]["name"] == "bad":
                raise KeyError("bad")
            super().changed(event_type, body)

    stream = await running(server, Failing())
    assert stream.lists == 2
    assert "unexpected failure" in caplog.text


async def test_a_watch_the_server_ends_at_once_is_reopened_with_backoff_not_in_a_loop() -> None:
    server = Server(pages=[page(["a"], version="7")])
    server.watches = [[], [], [], []]  # each ends as soon as it is opened
    sink = Sink()
    await running(server, sink, until=6.5)
    # Opened at 0, then after 1, 2 and 4 s of waiting: the fourth would open at 7 s.
    assert len(server.watched) == 3
    assert len(server.listed) == 1


async def test_a_watch_that_lasted_resets_the_backoff() -> None:
    server = Server(pages=[page(["a"], version="7")])

    async def watch(
        path: str, query: list[tuple[str, str]], *, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        server.watched.append(dict(query))
        if len(server.watched) in (2, 3):
            await asyncio.sleep(60)  # a normal watch: open for a minute, then ended
        for event in ():
            yield event

    server.watch = watch  # type: ignore[method-assign]
    await running(server, Sink(), until=125.5)
    # Opened at 0 (short, wait 1 s), 1 and 61 (a minute each), then 121, 122 and 124
    # (short: waits of 1, 2, 4 s again). Without the reset: 121, 123, 127.
    assert len(server.watched) == 6

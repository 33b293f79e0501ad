"""What the timers cost an idle cluster: which Agents the status timer polls, and that an
unchanged status is not written again (handlers.py; measured by benchmarks/operator.py)."""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf
from agentry_operator.handlers import (
    QuietWatches,
    _converged_once,
    _polls_status,
    _write,
    configure,
)
from agentry_operator.settings import OperatorSettings
from agentry_operator.status import StatusUpdate
from agentry_operator.streams import Client
from agentry_operator.watches import Watches
from agentry_operator.watching import SELECTOR, WATCHED, Children


def body(spec: dict[str, Any], status: dict[str, Any], generation: int = 2) -> kopf.Body:
    meta = {"name": "bot", "namespace": "ns", "generation": generation}
    return kopf.Body({"metadata": meta, "spec": spec, "status": status})


def polls(spec: dict[str, Any], status: dict[str, Any], generation: int = 2) -> bool:
    agent = body(spec, status, generation)
    return _polls_status(spec=agent.spec, status=agent.status, meta=agent.meta)


def test_a_suspended_agent_that_shows_suspended_for_its_generation_is_not_polled() -> None:
    assert not polls({"suspend": True}, {"phase": "Suspended", "observedGeneration": 2})


def test_a_suspended_agent_still_stopping_or_just_changed_is_polled() -> None:
    assert polls({"suspend": True}, {"phase": "Pending", "observedGeneration": 2})
    assert polls({"suspend": True}, {"phase": "Suspended", "observedGeneration": 1})


def test_a_running_agent_is_polled() -> None:
    assert polls({"replicas": 1}, {"phase": "Running", "observedGeneration": 2})


def test_no_timer_runs_before_a_handler_wrote_the_first_status() -> None:
    assert not polls({"replicas": 1}, {})
    assert not _converged_once(status=body({}, {}).status)
    assert _converged_once(status=body({}, {"phase": "Failed"}).status)


async def test_an_unchanged_status_is_not_patched_and_a_changed_one_is() -> None:
    status = {"phase": "Running", "observedGeneration": 2, "metrics": {"requests": 3}}
    agent = body({}, status)
    same = kopf.Patch()
    await _write(StatusUpdate(dict(status)), same, agent, "ns/bot", dict(status))
    assert not same
    moved = kopf.Patch()
    changed = StatusUpdate({**status, "metrics": {"requests": 4}})
    await _write(changed, moved, agent, "ns/bot", status)
    assert moved["status"]["metrics"] == {"requests": 4}


def test_kopf_success_lines_of_child_watch_handlers_are_dropped_and_others_kept() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, (), None)

    quiet = QuietWatches()
    assert not quiet.filter(record("Handler 'watch-ConfigMap' succeeded."))
    assert quiet.filter(record("Handler 'watch-ConfigMap' failed with an exception."))
    assert quiet.filter(record("Handler 'register.<locals>.create' succeeded."))


def test_the_operator_watches_only_labelled_children_and_never_secrets() -> None:
    """Its own streams (watches.py), one per kind, filtered by our labels on the server;
    kopf watches none of the children."""
    streams = Watches(cast(Client, None), Children(OperatorSettings()), []).streams
    paths = {stream.path for stream in streams}
    assert {stream.selector for stream in streams} == {SELECTOR}
    assert len(paths) == len(WATCHED) + 1
    assert {"/apis/apps/v1/statefulsets", "/apis/coordination.k8s.io/v1/leases"} <= paths
    assert not any("secrets" in path for path in paths)
    settings = kopf.OperatorSettings()
    configure(settings)
    assert not settings.watching.label_selectors


def test_a_namespaced_operator_watches_each_of_its_namespaces() -> None:
    streams = Watches(cast(Client, None), Children(OperatorSettings()), ["a", "b"]).streams
    assert len(streams) == 2 * (len(WATCHED) + 1)
    assert "/api/v1/namespaces/b/configmaps" in {stream.path for stream in streams}
    assert {stream.namespace for stream in streams} == {"a", "b"}

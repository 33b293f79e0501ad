"""Fixtures for the plugin's unit tests: a fake cluster fed with recorded API objects.

`FakeCluster` implements `agentry_cli.cluster.Cluster` over dicts loaded from
`data/*.yaml` (shaped exactly as the API server returns them); `FakeClock` moves time
only when a command sleeps, and runs the reactions a test scheduled (for example "the
operator reports phase Suspended") so waiting commands finish without real time.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_cli.cluster import HttpReply, LogOptions, StreamReply
from agentry_cli.errors import CliError, NotFound, OperationFailed
from agentry_cli.main import main

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeClock:
    """Starts at NOW; `sleep` advances time and runs the reactions due by then."""

    def __init__(self) -> None:
        self.current = NOW
        self.slept: list[float] = []
        self.reactions: list[Callable[[], None]] = []  # one is run per sleep, in order

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += timedelta(seconds=seconds)
        if self.reactions:
            self.reactions.pop(0)()


@dataclass
class FakeCluster:
    namespace: str = "team-a"
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    log_errors: dict[str, CliError] = field(default_factory=dict)
    follow_lines: dict[str, list[str]] = field(default_factory=dict)
    statefulsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: list[HttpReply] = field(default_factory=list)
    failure: CliError | None = None  # raised by every call, e.g. Forbidden
    calls: list[tuple[str, ...]] = field(default_factory=list)
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    log_requests: list[tuple[str, LogOptions]] = field(default_factory=list)
    posts: list[tuple[str, str, str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    gets: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    def _check(self, *call: str) -> None:
        self.calls.append(call)
        if self.failure is not None:
            raise self.failure

    def _get(self, kind: str, objects: dict[str, Any], namespace: str, name: str) -> Any:
        if name not in objects:
            raise NotFound(f'{kind} "{name}" not found in namespace "{namespace}"')
        return copy.deepcopy(objects[name])

    def _patch(self, kind: str, obj: dict[str, Any], name: str, patch: dict[str, Any]) -> Any:
        """Merge `patch`; a spec change moves the generation, as the API server does."""
        merge_patch(obj, patch)
        if "spec" in patch:
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        self.patches.append((kind, name, patch))
        return copy.deepcopy(obj)

    def get_agent(self, namespace: str, name: str) -> dict[str, Any]:
        self._check("get_agent", namespace, name)
        return dict(self._get("Agent", self.agents, namespace, name))

    def patch_agent(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check("patch_agent", namespace, name)
        return dict(self._patch("Agent", self.agents[name], name, patch))

    def list_leases(self, namespace: str) -> list[dict[str, Any]]:
        self._check("list_leases", namespace)
        return copy.deepcopy(self.leases)

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self._check("list_pods", namespace, label_selector)
        key, _, value = label_selector.partition("=")
        return [p for p in self.pods if p["metadata"].get("labels", {}).get(key) == value]

    def read_log(self, namespace: str, pod: str, options: LogOptions) -> str:
        self._check("read_log", namespace, pod)
        self.log_requests.append((pod, options))
        if pod in self.log_errors:
            raise self.log_errors[pod]
        return self.logs.get(pod, "")

    def follow_log(self, namespace: str, pod: str, options: LogOptions) -> Iterator[str]:
        self._check("follow_log", namespace, pod)
        self.log_requests.append((pod, options))
        return iter(self.follow_lines.get(pod, []))

    def get_statefulset(self, namespace: str, name: str) -> dict[str, Any]:
        self._check("get_statefulset", namespace, name)
        return dict(self._get("StatefulSet", self.statefulsets, namespace, name))

    def patch_statefulset(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check("patch_statefulset", namespace, name)
        return dict(self._patch("StatefulSet", self.statefulsets[name], name, patch))

    def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        self._check("get_secret", namespace, name)
        if name not in self.secrets:
            raise NotFound(f'Secret "{name}" not found in namespace "{namespace}"')
        return copy.deepcopy(self.secrets[name])

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self._check("create_secret", namespace, name)
        if name in self.secrets:
            raise OperationFailed(f'Secret "{name}" already exists in namespace "{namespace}"')
        self.secrets[name] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check("patch_secret", namespace, name)
        merge_patch(self.secrets[name], patch)
        self.patches.append(("Secret", name, patch))
        return copy.deepcopy(self.secrets[name])

    def post_through_proxy(
        self,
        namespace: str,
        target: str,
        port: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> HttpReply:
        self._check("post_through_proxy", namespace, target)
        self.posts.append((target, port, path, body, headers))
        return self.replies.pop(0)

    def get_through_proxy(
        self, namespace: str, target: str, port: str, path: str, headers: dict[str, str]
    ) -> HttpReply:
        self._check("get_through_proxy", namespace, target)
        self.gets.append((target, port, path, headers))
        return self.replies.pop(0)

    def stream_through_proxy(
        self,
        namespace: str,
        target: str,
        port: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> StreamReply:
        reply = self.post_through_proxy(namespace, target, port, path, body, headers)
        return StreamReply(
            reply.status, reply.reason, reply.headers, iter(reply.body.splitlines(keepends=True))
        )


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_cluster() -> FakeCluster:
    """A namespace `team-a` with the running Agent `demo` and its recorded objects."""
    agent = load("agent-running.yaml")
    return FakeCluster(
        agents={"demo": agent},
        leases=load("leases.yaml"),
        pods=load("pods.yaml"),
        logs=load("logs.yaml"),
        statefulsets={"demo": load("statefulset.yaml")},
        secrets={"demo-keys": load("secret-keys.yaml")},
    )


def report_state(fake_cluster: FakeCluster, index: int, **state: Any) -> None:
    """Make replica `index` report the runtime's `state` summary in its heartbeat."""
    annotations = fake_cluster.leases[index]["metadata"]["annotations"]
    record = json.loads(annotations["agentry.dev/heartbeat"])
    record["state"] = {**record.get("state", {}), **state}
    annotations["agentry.dev/heartbeat"] = json.dumps(record)


@pytest.fixture
def postgres_agent(fake_cluster: FakeCluster) -> FakeCluster:
    """Agent `demo` on the postgres backend, both replicas counting 42 sessions, all rows
    under the active key k1."""
    fake_cluster.agents["demo"]["spec"]["state"] = {
        "backend": "postgres",
        "postgres": {"connectionSecretRef": {"name": "pg", "key": "uri"}},
    }
    for index in (0, 1):
        report_state(
            fake_cluster,
            index,
            backend="postgres",
            sessions=42 - index,
            rowsUnderOldKeys=0,
            activeKeyId="k1",
        )
    return fake_cluster


@pytest.fixture
def kubectl_agent(fake_cluster: FakeCluster, clock: FakeClock) -> Callable[..., Result]:
    """Run `kubectl agent ARGS...` against the fake cluster; returns code, stdout, stderr."""

    def run(*argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            list(argv), connect=lambda _kc, _ctx: fake_cluster, out=out, err=err, clock=clock
        )
        return Result(code, out.getvalue(), err.getvalue())

    return run

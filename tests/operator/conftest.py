"""Run the real operator in-process against kmock's Kubernetes emulator.

The emulator is told about every resource the operator lists, watches or writes (kopf
waits forever without the CRD and namespace resources, see ../shared/FIELD-NOTES.md);
kopf and the operator's client both log in through a kubeconfig that points at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import pytest
import yaml
from agentry_operator.alerting import Notifier
from agentry_operator.handlers import register
from agentry_operator.reconcile import Reconciler
from agentry_operator.settings import OperatorSettings

RESOURCES: dict[str, tuple[str, bool, set[str]]] = {
    "agentry.dev/v1alpha1/agents": ("Agent", True, {"status"}),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, set()),
    "v1/namespaces": ("Namespace", False, set()),
    "v1/events": ("Event", True, set()),
    "v1/serviceaccounts": ("ServiceAccount", True, set()),
    "v1/configmaps": ("ConfigMap", True, set()),
    "v1/secrets": ("Secret", True, set()),
    "v1/services": ("Service", True, set()),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True, set()),
    "apps/v1/statefulsets": ("StatefulSet", True, {"status"}),
    "rbac.authorization.k8s.io/v1/roles": ("Role", True, set()),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True, set()),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True, set()),
    "coordination.k8s.io/v1/leases": ("Lease", True, set()),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, set()),
}
VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}
AGENTS = "agentry.dev/v1alpha1/agents"


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    for path, (kind, namespaced, subresources) in RESOURCES.items():
        kmock.resources[path] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )
    return kmock


@pytest.fixture
def kubeconfig(emulator: kmock.KubernetesEmulator, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    server = str(emulator.url).rstrip("/")
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "kmock", "user": {"token": "test"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


class WebhookSink:
    """Records notifications instead of posting them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def post(self, url: str, body: Any) -> int:
        self.calls.append((url, dict(body)))
        return 200


@pytest.fixture
def webhook() -> WebhookSink:
    return WebhookSink()


@pytest.fixture
def operator_settings(kubeconfig: Path) -> OperatorSettings:
    return OperatorSettings(
        kubeconfig=str(kubeconfig),
        runtime_image="agentry:test",
        readiness_port=0,  # a fixed port per test worker would collide; test_readiness picks one
        status_interval_seconds=0.2,
        drift_interval_seconds=0.3,
        heartbeat_stale_seconds=3600,
    )


@pytest.fixture
async def operator(
    operator_settings: OperatorSettings, webhook: WebhookSink
) -> AsyncIterator[None]:
    async with running_operator(operator_settings, webhook):
        yield


@contextlib.asynccontextmanager
async def running_operator(
    settings: OperatorSettings, webhook: WebhookSink, reconciler: Reconciler | None = None
) -> AsyncIterator[None]:
    """The operator in this event loop until the block ends (for tests that start it late
    or give it a reconciler of their own)."""
    registry = kopf.OperatorRegistry()
    notifier = Notifier(retries=0, post=webhook.post)
    register(registry, settings, notifier=notifier, reconciler=reconciler)
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry, clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready
        )
    )
    await asyncio.wait_for(ready, timeout=10)
    try:
        yield
    finally:
        stop.set_result(None)
        # Under load kopf's stop can pass 10 s (hung timers take 5, a request the emulator
        # dropped is retried with back-off); cut short, the cleanup handler never closes
        # the clients, and their sessions surface in a later test as unraisable warnings.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)
        _collect_shutdown_sessions()


def _collect_shutdown_sessions() -> None:
    """Collect, here and quietly, the HTTP sessions kopf opened while it was stopping.

    A guard daemon cancelled at shutdown can leave kopf re-authenticating after a dropped
    request; the session that opens is never closed (a process exiting does not care).
    Collected by chance in a later test, it would fail that test as an unraisable warning.
    Only the operator just stopped is affected: its registry and task are gone by now."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Unclosed (client session|connector)", ResourceWarning)
        gc.collect()


async def _eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll the emulator until `check` returns a truthy value (the operator runs async)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with contextlib.suppress(KeyError, LookupError, ValueError, TypeError, AssertionError):
            result = check()
            if result:
                return result
        if asyncio.get_running_loop().time() > deadline:
            return check()
        await asyncio.sleep(0.05)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """`await eventually(lambda: ...)`: poll until truthy or time out."""
    return _eventually


class Api:
    """Writes to the emulator over HTTP, as kubectl would, so watch events fire."""

    def __init__(self, emulator: kmock.KubernetesEmulator) -> None:
        self.base = str(emulator.url).rstrip("/")
        self.emulator = emulator

    @staticmethod
    def _path(resource: str, namespace: str, name: str | None = None) -> str:
        group_version, plural = resource.rsplit("/", 1)
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    async def create(self, resource: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta.setdefault("resourceVersion", "1")
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.base + self._path(resource, meta["namespace"]), json=obj) as resp,
        ):
            assert resp.status < 300, await resp.text()

    async def patch(self, resource: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        url = self.base + self._path(resource, namespace, name)
        headers = {"Content-Type": "application/merge-patch+json"}
        async with (
            aiohttp.ClientSession() as session,
            session.patch(url, json=patch, headers=headers) as resp,
        ):
            assert resp.status < 300, await resp.text()

    async def delete(self, resource: str, namespace: str, name: str) -> None:
        url = self.base + self._path(resource, namespace, name)
        async with aiohttp.ClientSession() as session, session.delete(url) as resp:
            assert resp.status < 300, await resp.text()

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or None when absent or deleted."""
        try:
            obj = self.emulator.objects[resource, namespace, name]
        except KeyError:
            return None
        return None if obj.deleted else json.loads(json.dumps(obj.raw))


@pytest.fixture
def api(emulator: kmock.KubernetesEmulator) -> Api:
    return Api(emulator)

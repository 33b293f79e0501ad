"""All Kubernetes I/O of the operator's domain code, async, over plain aiohttp.

The operator sends only raw paths with JSON bodies, so it needs no generated client:
kubernetes_asyncio's models cost the process about 40 MB of RSS for nothing. Credentials
come from `credentials.py` (the runtime's `kubecredentials.py`, made into kopf's ConnectionInfo).

Objects are plain dicts. `Kube.apply` is get → create when absent → JSON merge patch when
the live object does not already contain the desired fields; it works the same against
the real API server and against kmock's emulator (which has no server-side apply), and
running it twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from agentry_operator import metrics
from agentry_operator.credentials import Credentials, login
from agentry_operator.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

# kind → (API prefix, plural) of every resource the operator touches.
RESOURCES: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "Agent": ("/apis/agentry.dev/v1alpha1", "agents"),
}

Outcome = Literal["created", "updated", "unchanged"]
# Requests at once to the API server (kubernetes_asyncio's default pool size, kept).
CONNECTIONS = 100
# A request that takes longer has failed (kopf's own request timeout is the same).
REQUEST_TIMEOUT_SECONDS = 60.0


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-empty lines of a response body, each whole, as they arrive."""
    pending = bytearray()
    async for chunk in content.iter_any():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if end > start:
                yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending.strip():
        yield bytes(pending)


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when unknown)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def namespace_terminating(self) -> bool:
        """The API server refused to create anything in a namespace being deleted."""
        return self.status == 403 and "because it is being terminated" in str(self)


def _status_message(body: Any) -> str:
    """The API server's own words from a failed call's Status body (why it refused:
    a namespace being terminated, an admission webhook, a field), or "" if none."""
    try:
        status = json.loads(body) if isinstance(body, (str, bytes)) else None
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return message if isinstance(message, str) else ""


@dataclass(frozen=True)
class Applied:
    """The result of one apply: what happened and the live object afterwards."""

    outcome: Outcome
    obj: dict[str, Any]


def contains(actual: Any, desired: Any) -> bool:
    """True when every field of `desired` is present and equal in `actual` (lists by index).

    Fields the API server adds (defaults, clusterIP, status) do not count as drift.
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(contains(actual.get(key), value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return False
        return all(contains(a, d) for a, d in zip(actual, desired, strict=True))
    return bool(actual == desired)


def without_nulls(obj: Any) -> Any:
    """`obj` with every mapping entry whose value is None left out, at any depth."""
    if isinstance(obj, Mapping):
        return {key: without_nulls(value) for key, value in obj.items() if value is not None}
    if isinstance(obj, list):
        return [without_nulls(item) for item in obj]
    return obj


def without_fields(obj: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    """A deep-enough copy of `obj` with the given key paths removed."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    for path in paths:
        node: Any = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


# Fields the API server refuses to change after creation.
IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "StatefulSet": (
        ("spec", "selector"),
        ("spec", "serviceName"),
        ("spec", "volumeClaimTemplates"),
        ("spec", "podManagementPolicy"),
    ),
    "RoleBinding": (("roleRef",),),
}


class Kube:
    """A thin async client for the handful of calls the operator makes."""

    def __init__(
        self,
        credentials: Credentials,
        limiter: TokenBucket | None = None,
        *,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.credentials = credentials
        info = credentials.info
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS, ssl=info.as_ssl_context()),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            proxy=info.proxy_url,
            trust_env=info.trust_env,
        )
        # Every request waits for a token (AGENTRY_OPERATOR_API_QPS / _API_BURST).
        self.limiter = limiter or TokenBucket(0, 1)
        # kopf runs the cleanup handler (which closes this client) once its root tasks are
        # done, while handlers of events already taken may still be running: they must not
        # meet aiohttp's "Session is closed". Calls in flight finish first; later ones fail
        # as a KubeError, which handlers already treat as temporary.
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def closing(self) -> bool:
        """True once `close` began: calls are refused from then on."""
        return self._closing

    @classmethod
    async def connect(
        cls, kubeconfig: str | None = None, *, qps: float = 0, burst: int = 1
    ) -> Kube:
        """A client with in-cluster credentials when present, the kubeconfig otherwise,
        sending at most `qps` requests per second after a burst of `burst` (0: no bound)."""
        return cls(Credentials(login(kubeconfig)), TokenBucket(qps, burst))

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Refuse new calls, let the ones in flight finish (up to the grace), then close."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
        await self.session.close()

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None) -> str:
        prefix, plural = RESOURCES[kind]
        base = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{base}/{name}" if name else base

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if self._closing:
            raise KubeError(f"{method} {path}: the operator is shutting down", 503)
        self._in_flight += 1
        self._idle.clear()
        try:
            if waited := await self.limiter.acquire():
                metrics.CLIENT_WAIT.inc(waited)
            return await self._send(method, path, body, query, content_type)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        status, reason, payload = await self._exchange(method, path, data, query, content_type)
        # A 401 with a token from a file: the kubelet rotated it; once with the new one.
        if status == 401 and self.credentials.refresh():
            status, reason, payload = await self._exchange(method, path, data, query, content_type)
        if status >= 400:
            detail = f": {message}" if (message := _status_message(payload)) else ""
            raise KubeError(f"{method} {path}: {status} {reason}{detail}", status)
        result = json.loads(payload) if payload else None
        return result if isinstance(result, dict) else {}

    async def _exchange(
        self,
        method: str,
        path: str,
        data: str | None,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> tuple[int, str, bytes]:
        """One request: status, reason and body; a failed connection is a KubeError too
        (status 0), which handlers already retry."""
        headers = {
            "Content-Type": content_type,
            "Accept": "application/json",
            **self.credentials.headers(),
        }
        try:
            async with self.session.request(
                method, self.credentials.server + path, params=query, data=data, headers=headers
            ) as response:
                return response.status, response.reason or "", await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", self.path(kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_page(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        """One page of a list at `path` (a collection, namespaced or cluster-wide), with
        its metadata (`resourceVersion`, `continue`): what a watch starts from."""
        return await self._call("GET", path, query=query)

    async def watch(
        self, path: str, query: list[tuple[str, str]], *, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request at `path`, parsed, until the server ends it.

        The stream is not a call in flight (`close` would wait on it for nothing) and
        passes the rate limiter once, when it is opened. A line is read whole however long
        (a state ConfigMap's event is up to 1 MiB; aiohttp's readline stops at 64 KiB).
        """
        if self._closing:
            raise KubeError(f"WATCH {path}: the operator is shutting down", 503)
        await self.limiter.acquire()
        headers = {"Accept": "application/json", **self.credentials.headers()}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        try:
            async with self.session.get(
                self.credentials.server + path,
                params=[*query, ("watch", "true")],
                headers=headers,
                timeout=timeout,
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    if response.status == 401:
                        self.credentials.refresh()  # the next watch sends the new token
                    detail = f": {message}" if (message := _status_message(payload)) else ""
                    failed = f"{response.status} {response.reason or ''}{detail}"
                    raise KubeError(f"WATCH {path}: {failed}", response.status)
                async for line in _lines(response.content):
                    event = json.loads(line)
                    if isinstance(event, dict):
                        yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(f"WATCH {path}: {type(exc).__name__}: {exc}") from exc

    async def list_everywhere(self, kind: str) -> list[dict[str, Any]]:
        """Every object of `kind` in the cluster (needs cluster-wide list permission)."""
        prefix, plural = RESOURCES[kind]
        result = await self._call("GET", f"{prefix}/{plural}")
        return list(result.get("items") or [])

    async def list(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = await self._call("GET", self.path(kind, namespace), query=query)
        return list(result.get("items") or [])

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST the object without its null fields: a builder writes null for "remove this
        if an earlier spec set it" (a merge patch deletes it), which a new object never has."""
        meta = obj["metadata"]
        path = self.path(obj["kind"], meta["namespace"])
        return await self._call("POST", path, body=without_nulls(obj))

    async def patch(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._call(
            "PATCH",
            self.path(kind, namespace, name),
            body=dict(patch),
            content_type="application/merge-patch+json",
        )

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource (what kopf does for a handler's patch)."""
        return await self._call(
            "PATCH",
            self.path(kind, namespace, name) + "/status",
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    async def delete(
        self, kind: str, namespace: str, name: str, propagation: str = "Background"
    ) -> bool:
        """Delete if present; False when it was already gone. `propagation` "Orphan"
        keeps the dependents (a StatefulSet's pods) running without an owner."""
        try:
            await self._call(
                "DELETE",
                self.path(kind, namespace, name),
                body={"propagationPolicy": propagation},
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def apply(
        self,
        desired: Mapping[str, Any],
        *,
        likely_absent: bool = False,
        guard: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> Applied:
        """Create the object, or patch it back to the desired fields when it drifted.

        `likely_absent` (a new Agent's children) tries the create first and reads the
        object only when it exists: one request instead of two in the common case.
        `guard` sees an object that already exists before anything is written to it and
        raises to leave it alone (an object of the same name that is someone else's).
        """
        kind = desired["kind"]
        meta = desired["metadata"]
        live = None if likely_absent else await self.get(kind, meta["namespace"], meta["name"])
        if live is None:
            try:
                return Applied("created", await self.create(desired))
            except KubeError as exc:
                # 409: created meanwhile (a replayed event). 403: RBAC may refuse a create
                # before it looks for an existing object (a RoleBinding to someone else's
                # Role), so a same-named object has to be read to tell.
                if exc.status not in (403, 409):
                    raise
                live = await self.get(kind, meta["namespace"], meta["name"])
                if live is None:
                    raise
        if guard is not None:
            guard(kind, live)
        if contains(live, desired):
            return Applied("unchanged", live)
        patch = without_fields(desired, IMMUTABLE.get(kind, ()))
        if not contains(live, patch):
            updated = await self.patch(kind, meta["namespace"], meta["name"], patch)
            return Applied("updated", updated)
        logger.warning(
            "%s %s/%s differs only in immutable fields; not changed",
            kind,
            meta["namespace"],
            meta["name"],
        )
        return Applied("unchanged", live)

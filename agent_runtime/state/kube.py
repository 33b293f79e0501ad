"""The few ConfigMap calls the configmap backend makes, as plain JSON dicts.

Over the runtime's own API client (``agent_runtime.kubeapi``), so the store deals in
dicts and three outcomes (found, not found, conflict). Every other status, a deadline
passed or a failed connection is a StateError naming the verb, the object and the cause.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.kubeapi import REQUEST_TIMEOUT_SECONDS, ApiUnreachable, KubeClient, Response
from agent_runtime.state.errors import StateError


class Conflict(Exception):
    """409: the object changed since it was read (or already exists on create)."""


class ConfigMaps:
    """get / create / replace ConfigMaps in one namespace."""

    def __init__(
        self,
        api: KubeClient,
        namespace: str,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._path = f"/api/v1/namespaces/{namespace}/configmaps"
        self._timeout = timeout_seconds

    async def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        answer = await self._send("read", name, "GET", f"{self._path}/{name}")
        if answer.status == 404:
            return None
        return self._ok("read", name, answer)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a new object; Conflict if it exists."""
        name = body["metadata"]["name"]
        answer = await self._send("create", name, "POST", self._path, body)
        if answer.status == 409:
            raise Conflict(name)
        return self._ok("create", name, answer)

    async def replace(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT the whole object (guarded when body has a resourceVersion); None if absent."""
        name = body["metadata"]["name"]
        answer = await self._send("update", name, "PUT", f"{self._path}/{name}", body)
        if answer.status == 404:
            return None
        if answer.status == 409:
            raise Conflict(name)
        return self._ok("update", name, answer)

    async def _send(
        self, verb: str, name: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> Response:
        try:
            return await self._api.request(method, path, body, timeout_seconds=self._timeout)
        except ApiUnreachable as exc:
            raise StateError(f"cannot {verb} configmap {self._namespace}/{name}: {exc}") from exc

    def _ok(self, verb: str, name: str, answer: Response) -> dict[str, Any]:
        if answer.ok:
            return answer.body
        raise StateError(f"cannot {verb} configmap {self._namespace}/{name}: {answer.describe()}")

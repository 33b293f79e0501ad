"""The few ConfigMap calls the configmap backend makes, as plain JSON dicts.

Wraps `kubernetes_asyncio`'s CoreV1Api so the store deals in dicts and three outcomes
(found, not found, conflict) instead of generated models. Responses are read raw
(`_preload_content=False`) to skip model conversion of large binaryData; in that mode the
client does not raise on error statuses, so the status is checked here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client

from agent_runtime.kube import REQUEST_TIMEOUT_SECONDS
from agent_runtime.state.errors import StateError


class Conflict(Exception):
    """409: the object changed since it was read (or already exists on create)."""


class ConfigMaps:
    """get / create / replace ConfigMaps in one namespace."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        # Any: we pass dict bodies and read raw responses, which the generated
        # signatures do not describe.
        self._core: Any = client.CoreV1Api(api)
        self._namespace = namespace
        self._timeout = timeout_seconds

    async def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        call = self._core.read_namespaced_config_map(name, self._namespace, _preload_content=False)
        status, body = await self._send("read", name, call)
        if status == 404:
            return None
        return self._ok("read", name, status, body)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a new object; Conflict if it exists."""
        name = body["metadata"]["name"]
        call = self._core.create_namespaced_config_map(
            self._namespace, body, _preload_content=False
        )
        status, answer = await self._send("create", name, call)
        if status == 409:
            raise Conflict(name)
        return self._ok("create", name, status, answer)

    async def replace(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT the whole object (guarded when body has a resourceVersion); None if absent."""
        name = body["metadata"]["name"]
        call = self._core.replace_namespaced_config_map(
            name, self._namespace, body, _preload_content=False
        )
        status, answer = await self._send("update", name, call)
        if status == 404:
            return None
        if status == 409:
            raise Conflict(name)
        return self._ok("update", name, status, answer)

    async def _send(self, verb: str, name: str, call: Awaitable[Any]) -> tuple[int, dict[str, Any]]:
        try:
            async with asyncio.timeout(self._timeout):
                response = await call
                raw = await response.read()
            status = int(response.status)
        except client.ApiException as exc:
            return int(exc.status or 0), {"message": str(exc.reason)}
        except TimeoutError as exc:
            raise StateError(
                f"cannot {verb} configmap {self._namespace}/{name}: "
                f"the API server did not answer within {self._timeout:g}s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise StateError(
                f"cannot {verb} configmap {self._namespace}/{name}: {exc.__class__.__name__}"
            ) from exc
        try:
            return status, cast(dict[str, Any], json.loads(raw))
        except ValueError:
            return status, {"message": raw[:200].decode("utf-8", "replace")}

    def _ok(self, verb: str, name: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
        if 200 <= status < 300:
            return body
        raise StateError(
            f"cannot {verb} configmap {self._namespace}/{name}: {status} "
            f"{body.get('reason') or ''} {body.get('message') or ''}".strip()
        )

"""A small async client for the Kubernetes API over aiohttp, with the identity of one
kubeconfig (the node's, or the scheduler's for binding and PV creation).

The node works with pods as plain JSON (it copies their spec into its own status), so a
typed client's model conversion would only be in the way; this is list, watch, get,
create, patch and delete on paths.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, body: str, what: str) -> None:
        self.status = status
        try:
            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            message = body
        super().__init__(f"{what}: {status} {message}")


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path


def _material(entry: Json, name: str, base: Path, scratch: Path) -> Path:
    if entry.get(f"{name}-data"):
        path = scratch / f"{name}-{abs(hash(entry[f'{name}-data']))}.pem"
        path.write_bytes(base64.b64decode(entry[f"{name}-data"]))
        path.chmod(0o600)
        return path
    path = Path(entry[name])
    return path if path.is_absolute() else base / path


def load_kubeconfig(path: Path, scratch: Path | None = None) -> Credentials:
    """The current context's server, CA and client certificate (files or inline data)."""
    config = yaml.safe_load(path.read_text())
    context_name = config.get("current-context") or config["contexts"][0]["name"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    scratch = scratch or Path(tempfile.mkdtemp(prefix="agentry-node-"))
    base = path.parent
    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_file=_material(cluster, "certificate-authority", base, scratch),
        cert_file=_material(user, "client-certificate", base, scratch),
        key_file=_material(user, "client-key", base, scratch),
    )


class ApiClient:
    """One identity's connection pool to the API server."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        context = ssl.create_default_context(cafile=str(creds.ca_file))
        context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
        self._session = aiohttp.ClientSession(
            base_url=creds.server,
            connector=aiohttp.TCPConnector(ssl=context, limit=50),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            read_bufsize=1 << 22,  # a watch event is one line; pods can be large
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,  # noqa: ASYNC109 - per request, passed to aiohttp
    ) -> Json:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        async with self._session.request(
            method,
            path,
            data=data,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text, f"{method} {path}")
            result: Json = json.loads(text) if text else {}
            return result

    async def get(self, path: str, params: dict[str, str] | None = None) -> Json:
        return await self.request("GET", path, params=params)

    async def get_or_none(self, path: str) -> Json | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status in (403, 404):
                return None
            raise

    async def create(self, path: str, body: Json) -> Json:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, body: Json) -> Json:
        return await self.request(
            "PATCH", path, body=body, content_type="application/merge-patch+json"
        )

    async def delete(self, path: str, body: Json | None = None) -> Json:
        return await self.request("DELETE", path, body=body)

    async def watch(
        self, path: str, params: dict[str, str], timeout_seconds: int = 300
    ) -> AsyncIterator[Json]:
        """Events of one watch request until the server ends it."""
        query = dict(params, watch="1", allowWatchBookmarks="true")
        query["timeoutSeconds"] = str(timeout_seconds)
        async with self._session.get(
            path,
            params=query,
            timeout=aiohttp.ClientTimeout(
                total=timeout_seconds + 30, sock_read=timeout_seconds + 30
            ),
        ) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, await resp.text(), f"WATCH {path}")
            async for line in resp.content:
                if line.strip():
                    event: Json = json.loads(line)
                    yield event

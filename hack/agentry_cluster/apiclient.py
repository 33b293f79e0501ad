"""A few HTTPS calls to the API server with the admin certificate, made with the standard
library: `up` needs only /readyz, one Node and one binding, and importing a full
Kubernetes client would cost more than the calls themselves."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ApiClient:
    def __init__(self, server: str, pki_dir: Path, identity: str = "admin") -> None:
        self.server = server.rstrip("/")
        self._context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        self._context.load_cert_chain(
            str(pki_dir / f"{identity}.crt"), str(pki_dir / f"{identity}.key")
        )

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Response:
        """One request; HTTP errors come back as a Response, connection errors raise OSError."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - the server URL is ours, https only
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=self._context, timeout=timeout) as resp:  # noqa: S310
                return Response(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, err.read())

    def get(self, path: str, timeout: float = 5.0) -> Response:
        return self.request("GET", path, timeout=timeout)

    def create(self, path: str, body: dict[str, Any]) -> Response:
        """POST `body`; an object that already exists counts as created."""
        resp = self.request("POST", path, body)
        if resp.status not in (200, 201, 202, 409):
            raise OSError(f"POST {path}: HTTP {resp.status}: {resp.body[:300]!r}")
        return resp

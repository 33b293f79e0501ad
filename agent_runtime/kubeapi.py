"""The runtime's Kubernetes API client: a few JSON calls over aiohttp, and its credentials.

The runtime makes a handful of API calls (the heartbeat Lease in ``heartbeat.py``, the
configmap backend's ConfigMaps in ``state/kube.py``). A generated client library cost
every agent pod about 40 MB of RSS and 860 modules for them (docs/benchmarks.md), so
this module speaks the API itself: one ``request`` that sends a JSON body and returns the
status and the parsed answer, with a deadline on every call.

Credentials (``client_from_environment``, called by ``lifecycle.py`` only when the
heartbeat or the configmap backend needs the API): in a pod (``KUBERNETES_SERVICE_HOST``
set) the service account's token and CA; elsewhere the current context of the kubeconfig
(the first path of ``KUBECONFIG``, else ``~/.kube/config``), for running a runtime
against a development cluster: a token or token file, a client certificate, a CA or
``insecure-skip-tls-verify``. Reading them (the token file re-read as the kubelet rotates
it, relative paths, ``exec`` and ``auth-provider`` users refused by name) is
``kubecredentials.py``, shared with the operator; this module makes the SSL context and
the exit-2 configuration errors. A token is never logged and never part of an error
message.
"""

from __future__ import annotations

import asyncio
import io
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import aiohttp

from agent_runtime import jsonwire
from agent_runtime.errors import ConfigError
from agent_runtime.kubecredentials import (
    BASIC_AUTH,
    PLUGINS,
    SERVICE_ACCOUNT_DIR,
    CurrentContext,
    KubeconfigError,
    Pem,
    read_kubeconfig,
    service_account,
)

REQUEST_TIMEOUT_SECONDS = 10.0
"""One API call's deadline, for every call the runtime makes. Without one, with the API
server cut off (packets dropped, not refused) a call waited on TCP retransmissions for
many minutes."""

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "agentry-runtime"
# What the kubeconfig of a runtime outside a pod is for (every refusal says so).
OUTSIDE_A_POD = (
    "outside a pod (KUBERNETES_SERVICE_HOST unset) the runtime reads a kubeconfig for the "
    "heartbeat and the configmap backend; in a pod it uses its service account"
)


class ApiUnreachable(Exception):
    """No answer from the API server: the call's deadline passed or the connection failed.

    ``str()`` is the reason, fit for an error message: the deadline, or the class of the
    connection error (never a header, so never the token)."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Response:
    """The status and JSON body of an answer; a body that is not a JSON object becomes
    ``{"message": <its first 200 characters>}``, so error paths can always quote one."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        """``403 Forbidden leases "x" is forbidden: ...``: the status and the Status' words."""
        reason = self.body.get("reason") or ""
        return f"{self.status} {reason} {self.body.get('message') or ''}".strip()


class TokenSource(Protocol):
    def get(self) -> str:
        """The bearer token to send now."""

    def refresh(self) -> bool:
        """The API server refused the token (401): read it afresh now; True when it changed."""


class StaticToken:
    """A token written in the kubeconfig."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get(self) -> str:
        return self._token

    def refresh(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are to it."""

    server: str
    ssl_context: ssl.SSLContext | None = None  # None: plain HTTP, or the system's CAs
    token: TokenSource | None = None
    tls_server_name: str | None = None
    source: str = field(default="", compare=False)  # for messages: the file or the pod


class KubeClient:
    """JSON requests to one API server; ``close()`` when done.

    ``KubeClient(Credentials("http://127.0.0.1:8080"))`` is a client without TLS or token,
    as tests use it against an emulated API server."""

    def __init__(
        self, credentials: Credentials, *, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self.credentials = credentials
        self.server = credentials.server.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> Self:
        """A client for an API server that needs neither TLS nor a token (tests)."""
        return cls(Credentials(str(url)), **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        timeout_seconds: float | None = None,
    ) -> Response:
        """Send one request; the answer whatever its status. ApiUnreachable when none came
        within the deadline (the client's, or ``timeout_seconds``) or the connection failed."""
        deadline = self.timeout_seconds if timeout_seconds is None else timeout_seconds
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            # A stream, not bytes: aiohttp warns about bodies over 1 MiB given as bytes,
            # and a checkpoint chunk is about that once in base64.
            data = io.BytesIO(jsonwire.dumps(body))
            headers["Content-Type"] = content_type
        token = self.credentials.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get()}"
        try:
            async with asyncio.timeout(deadline):
                async with self._http().request(
                    method,
                    self.server + path,
                    data=data,
                    headers=headers,
                    server_hostname=self.credentials.tls_server_name,
                ) as answer:
                    raw = await answer.read()
                    status = answer.status
        except TimeoutError as exc:
            reason = f"the API server did not answer within {deadline:g}s"
            raise ApiUnreachable(reason, timed_out=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiUnreachable(exc.__class__.__name__, timed_out=False) from exc
        if status == 401 and token is not None:
            token.refresh()
        return Response(status, _json_object(raw))

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp wants it made inside the event loop."""
        if self._session is None or self._session.closed:
            context = self.credentials.ssl_context
            connector = aiohttp.TCPConnector(ssl=context if context is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = jsonwire.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"message": raw[:200].decode("utf-8", "replace")}


# -- credentials ------------------------------------------------------------------------


def client_from_environment(
    environ: Mapping[str, str] | None = None,
    *,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    home: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> KubeClient:
    """A client with the pod's service account, or else the kubeconfig's current context."""
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST"):
        return KubeClient(in_cluster_credentials(env, service_account_dir, clock))
    return KubeClient(kubeconfig_credentials(kubeconfig_path(env, home), clock))


def in_cluster_credentials(
    environ: Mapping[str, str],
    directory: Path = SERVICE_ACCOUNT_DIR,
    clock: Callable[[], float] = time.monotonic,
) -> Credentials:
    """The API server's Service address and the service account's token and CA."""
    try:
        account = service_account(environ, directory, clock)
        context = ssl.create_default_context(cafile=str(account.ca_path))
    except OSError as exc:
        raise ConfigError(
            "KUBERNETES_SERVICE_HOST",
            f"set (in a pod), but the service account's {exc.filename or directory} cannot "
            f"be read ({exc.strerror or exc}); the pod needs its token mounted "
            "(automountServiceAccountToken)",
        ) from None
    return Credentials(account.server, context, account.token, source=str(directory))


def kubeconfig_path(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """The first path of KUBECONFIG, else ~/.kube/config (merging several files is left
    to kubectl: a runtime outside a pod is for development)."""
    first = next((p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    if first is not None:
        return Path(first).expanduser()
    return (home or Path.home()) / ".kube" / "config"


def kubeconfig_credentials(path: Path, clock: Callable[[], float] = time.monotonic) -> Credentials:
    """The server and user of the kubeconfig's current context (basic auth refused too:
    this client does not send it)."""
    try:
        current = read_kubeconfig(
            [path], program="the agent runtime", unsupported=PLUGINS + BASIC_AUTH, clock=clock
        )
        context = _ssl_context(current) if current.server.startswith("https:") else None
    except KubeconfigError as exc:
        raise ConfigError("KUBECONFIG", f"{exc}; {OUTSIDE_A_POD}") from None
    token: TokenSource | None = current.token_file
    if current.token:
        token = StaticToken(current.token)
    return Credentials(current.server, context, token, current.tls_server_name, source=str(path))


def _ssl_context(current: CurrentContext) -> ssl.SSLContext:
    """The context's CA (or none checked with insecure-skip-tls-verify) and client
    certificate; KubeconfigError when they cannot be loaded."""
    try:
        if current.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif isinstance(current.certificate_authority, bytes):
            context = ssl.create_default_context(cadata=current.certificate_authority.decode())
        elif current.certificate_authority is not None:
            context = ssl.create_default_context(cafile=str(current.certificate_authority))
        else:
            context = ssl.create_default_context()
        if current.client_certificate is not None:
            _load_client_certificate(context, current.client_certificate, current.client_key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        where = getattr(exc, "filename", None)
        raise KubeconfigError(
            current.source,
            f"context {current.name!r}: credentials cannot be loaded"
            + (f" from {where}" if where else "")
            + f" ({reason})",
        ) from None
    return context


def _load_client_certificate(context: ssl.SSLContext, cert: Pem, key: Pem | None) -> None:
    """``load_cert_chain`` reads only files: data goes to a private temporary directory
    (mode 0700) for the load and is removed at once."""
    with tempfile.TemporaryDirectory(prefix="agentry-kube-") as scratch:

        def as_file(pem: Pem, name: str) -> str:
            if isinstance(pem, Path):
                return str(pem)
            written = Path(scratch) / name
            written.touch(mode=0o600)
            written.write_bytes(pem)
            return str(written)

        context.load_cert_chain(
            as_file(cert, "client.crt"), as_file(key, "client.key") if key is not None else None
        )

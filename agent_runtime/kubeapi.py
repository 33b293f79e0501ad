"""The runtime's Kubernetes API client: a few JSON calls over aiohttp, and its credentials.

The runtime makes a handful of API calls (the heartbeat Lease in ``heartbeat.py``, the
configmap backend's ConfigMaps in ``state/kube.py``). A generated client library cost
every agent pod about 40 MB of RSS and 860 modules for them (docs/benchmarks.md), so
this module speaks the API itself: one ``request`` that sends a JSON body and returns the
status and the parsed answer, with a deadline on every call.

Credentials (``client_from_environment``, called by ``lifecycle.py`` only when the
heartbeat or the configmap backend needs the API): in a pod (``KUBERNETES_SERVICE_HOST``
set) the service account's token and CA; the token file is read again once it is a
minute old, because the kubelet rotates projected tokens (client-go re-reads as often).
Elsewhere the current context of the kubeconfig (the first path of ``KUBECONFIG``, else
``~/.kube/config``), for running a runtime against a development cluster: a token or
token file, a client certificate, a CA or ``insecure-skip-tls-verify``. Users that
authenticate through a plugin (``exec``, ``auth-provider``) are refused with a message
naming the file and the user: the runtime is meant to run in a pod. A token is never
logged and never part of an error message.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
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

REQUEST_TIMEOUT_SECONDS = 10.0
"""One API call's deadline, for every call the runtime makes. Without one, with the API
server cut off (packets dropped, not refused) a call waited on TCP retransmissions for
many minutes."""

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_MAX_AGE_SECONDS = 60.0
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "agentry-runtime"

# What a kubeconfig user may hold that this client does not do: plugins run programs,
# and basic auth is gone from the API server since 1.19.
UNSUPPORTED_AUTH = ("exec", "auth-provider", "username", "password")


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

    def expire(self) -> None:
        """The API server refused the token (401): read it afresh on the next call."""


class StaticToken:
    """A token written in the kubeconfig."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get(self) -> str:
        return self._token

    def expire(self) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class TokenFile:
    """A token kept in a file that someone else rewrites (the kubelet's projected service
    account token, a kubeconfig's ``tokenFile``): read at most ``max_age_seconds`` ago.

    The file is read on construction, so a missing token is an error at startup. A failed
    re-read keeps the token already held; the next call tries again."""

    def __init__(
        self,
        path: Path,
        *,
        max_age_seconds: float = TOKEN_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._max_age = max_age_seconds
        self._clock = clock
        self._token = path.read_text().strip()
        self._read_at = clock()

    def get(self) -> str:
        now = self._clock()
        if now - self._read_at >= self._max_age:
            try:
                self._token = self.path.read_text().strip()
                self._read_at = now
            except OSError:
                pass
        return self._token

    def expire(self) -> None:
        self._read_at = -math.inf

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"


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
            token.expire()
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
    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ.get("KUBERNETES_SERVICE_PORT") or "443"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        token = TokenFile(directory / "token", clock=clock)
        context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    except OSError as exc:
        raise ConfigError(
            "KUBERNETES_SERVICE_HOST",
            f"set (in a pod), but the service account's {exc.filename or directory} cannot "
            f"be read ({exc.strerror or exc}); the pod needs its token mounted "
            "(automountServiceAccountToken)",
        ) from None
    return Credentials(f"https://{host}:{port}", context, token, source=str(directory))


def kubeconfig_path(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """The first path of KUBECONFIG, else ~/.kube/config (merging several files is left
    to kubectl: a runtime outside a pod is for development)."""
    first = next((p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    if first is not None:
        return Path(first).expanduser()
    return (home or Path.home()) / ".kube" / "config"


def kubeconfig_credentials(path: Path, clock: Callable[[], float] = time.monotonic) -> Credentials:
    """The server and user of the kubeconfig's current context."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise _kubeconfig_error(
            path,
            f"cannot be read ({exc.strerror or exc}); outside a pod (KUBERNETES_SERVICE_HOST "
            "unset) the runtime needs a kubeconfig for the heartbeat and the configmap backend",
        ) from None
    except yaml.YAMLError as exc:
        raise _kubeconfig_error(path, f"is not YAML: {exc}") from None
    if not isinstance(document, dict):
        raise _kubeconfig_error(path, "is not a kubeconfig (no mapping at the top)")
    current = document.get("current-context")
    if not current:
        raise _kubeconfig_error(path, "has no current-context")
    context = _entry(path, document, "contexts", current, "context")
    cluster = _entry(path, document, "clusters", context.get("cluster"), "cluster")
    user_name = context.get("user")
    user = _entry(path, document, "users", user_name, "user") if user_name else {}
    unsupported = [key for key in UNSUPPORTED_AUTH if user.get(key)]
    if unsupported:
        raise _kubeconfig_error(
            path,
            f"user {user_name!r} authenticates with {unsupported[0]!r}, which the agent "
            "runtime does not support (it is meant to run in a pod with its service "
            "account); for development use a user with a token, tokenFile or client "
            "certificate",
        )
    server = cluster.get("server")
    if not server:
        raise _kubeconfig_error(path, f"cluster {context.get('cluster')!r} has no server")
    base = path.parent
    try:
        context_ssl = _ssl_context(base, cluster, user) if server.startswith("https:") else None
        token: TokenSource | None = None
        if user.get("token"):
            token = StaticToken(str(user["token"]))
        elif user.get("tokenFile"):
            token = TokenFile(_resolve(base, user["tokenFile"]), clock=clock)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        where = getattr(exc, "filename", None)
        raise _kubeconfig_error(
            path,
            f"context {current!r}: credentials cannot be loaded"
            + (f" from {where}" if where else "")
            + f" ({reason})",
        ) from None
    return Credentials(server, context_ssl, token, cluster.get("tls-server-name"), source=str(path))


def _kubeconfig_error(path: Path, reason: str) -> ConfigError:
    return ConfigError("KUBECONFIG", f"{path} {reason}")


def _entry(
    path: Path, document: dict[str, Any], section: str, name: Any, key: str
) -> dict[str, Any]:
    """The ``key`` mapping of the entry called ``name`` in ``section`` (a list of
    ``{name, <key>}``), as kubectl reads them."""
    for item in document.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            found = item.get(key) or {}
            if isinstance(found, dict):
                return found
    raise _kubeconfig_error(path, f"has no {section} entry named {name!r}")


def _resolve(base: Path, value: str) -> Path:
    """Relative paths in a kubeconfig are relative to the file, as kubectl takes them."""
    given = Path(value).expanduser()
    return given if given.is_absolute() else base / given


def _ssl_context(base: Path, cluster: dict[str, Any], user: dict[str, Any]) -> ssl.SSLContext:
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
        context = ssl.create_default_context(cadata=pem)
    elif cluster.get("certificate-authority"):
        context = ssl.create_default_context(
            cafile=str(_resolve(base, cluster["certificate-authority"]))
        )
    else:
        context = ssl.create_default_context()
    cert = _pem(base, user, "client-certificate")
    key = _pem(base, user, "client-key")
    if cert is not None:
        _load_client_certificate(context, cert, key)
    return context


def _pem(base: Path, user: dict[str, Any], name: str) -> bytes | Path | None:
    """The user's ``name-data`` (decoded) or ``name`` (a path); None when neither is set."""
    if user.get(f"{name}-data"):
        return base64.b64decode(user[f"{name}-data"])
    if user.get(name):
        return _resolve(base, user[name])
    return None


def _load_client_certificate(
    context: ssl.SSLContext, cert: bytes | Path, key: bytes | Path | None
) -> None:
    """``load_cert_chain`` reads only files: data goes to a private temporary directory
    (mode 0700) for the load and is removed at once."""
    with tempfile.TemporaryDirectory(prefix="agentry-kube-") as scratch:

        def as_file(pem: bytes | Path, name: str) -> str:
            if isinstance(pem, Path):
                return str(pem)
            written = Path(scratch) / name
            written.touch(mode=0o600)
            written.write_bytes(pem)
            return str(written)

        context.load_cert_chain(
            as_file(cert, "client.crt"), as_file(key, "client.key") if key is not None else None
        )

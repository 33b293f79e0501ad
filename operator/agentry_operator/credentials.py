"""The operator's credentials for the API server: a service account in a pod, a kubeconfig
elsewhere. kopf (its login handler) and the operator's client (`kube.Kube`) both use them.

A kubeconfig is read by kopf's own `kopf.login_with_kubeconfig`, which takes the current
context's fields as they are: server, CA (file or data), client certificate and key
(files or data), token, username and password, insecure-skip-tls-verify, proxy-url.
`tokenFile` is read here, as is a service account's token: both are re-read while the
operator runs, because the kubelet rotates a projected token before it expires. A user
whose credentials come from a program (`exec`) or an `auth-provider` is refused with a
message naming the kubeconfig and the user entry, rather than failing later with 401s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kopf
import yaml

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# How long a token read from a file is used before the file is read again (client-go
# re-reads a rotated service-account token every minute too).
TOKEN_MAX_AGE_SECONDS = 60.0
# Kubeconfig user fields that run code or talk to an identity provider to get a token.
UNSUPPORTED_USER_FIELDS = ("exec", "auth-provider")


class CredentialsError(kopf.LoginError):
    """No usable credentials; the message says where they were looked for and why not."""


@dataclasses.dataclass(frozen=True)
class Login:
    """Where to connect and as whom; `token_path` is the file the token came from."""

    info: kopf.ConnectionInfo
    token_path: Path | None = None


def login(
    kubeconfig: str | None,
    *,
    service_account: Path = SERVICE_ACCOUNT,
    environ: Mapping[str, str] = os.environ,
) -> Login:
    """The service account inside a pod (no kubeconfig given), the kubeconfig otherwise.

    Inside a pod a missing token is an error, not a reason to try ~/.kube/config: that
    would hide the real cause (a token not mounted) behind a kubeconfig error.
    """
    if kubeconfig is None and environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(service_account, environ)
    return from_kubeconfig(kubeconfig or "~/.kube/config")


def in_cluster(directory: Path, environ: Mapping[str, str]) -> Login:
    """The pod's service account. The server is the address the kubelet puts in the
    environment (as client-go does), not kopf's `kubernetes.default.svc`, which needs
    cluster DNS."""
    host, port = environ["KUBERNETES_SERVICE_HOST"], environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_path = directory / "token"
    try:
        token = token_path.read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"in a pod, but no service-account token: {exc}") from exc
    namespace = directory / "namespace"
    ca = directory / "ca.crt"
    info = kopf.ConnectionInfo(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_path=str(ca) if ca.exists() else None,
        token=token or None,
        default_namespace=namespace.read_text().strip() if namespace.exists() else None,
    )
    return Login(info, token_path)


def from_kubeconfig(kubeconfig: str) -> Login:
    """The current context of `kubeconfig` (a path, or several joined with os.pathsep:
    the first definition of a name wins, as with kubectl). Relative file paths in an
    entry are taken from the directory of the file that holds the entry."""
    paths = [Path(p).expanduser() for p in kubeconfig.split(os.pathsep) if p.strip()]
    entries = _entries(paths)
    user_name, user, user_dir = entries.current("user")
    for field in UNSUPPORTED_USER_FIELDS:
        if field in user:
            raise CredentialsError(
                f"kubeconfig {kubeconfig}: user {user_name!r} gets its credentials from "
                f"{field!r}, which the operator does not support; give it a token, "
                "tokenFile or client certificate instead"
            )
    with _environment("KUBECONFIG", os.pathsep.join(str(p) for p in paths)):
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:  # only when KUBECONFIG is empty, which the paths above rule out
        raise CredentialsError(f"kubeconfig {kubeconfig}: nothing to read")
    cluster_name, _, cluster_dir = entries.current("cluster")
    if not info.server:
        raise CredentialsError(f"kubeconfig {kubeconfig}: cluster {cluster_name!r} has no server")
    token_file = user.get("tokenFile")
    token_path = Path(_relative(token_file, user_dir)).expanduser() if token_file else None
    info = dataclasses.replace(
        info,
        ca_path=_relative(info.ca_path, cluster_dir),
        certificate_path=_relative(info.certificate_path, user_dir),
        private_key_path=_relative(info.private_key_path, user_dir),
        token=info.token or (_read_token(token_path) if token_path else None),
    )
    return Login(info, token_path if not user.get("token") else None)


@dataclasses.dataclass
class _Entries:
    """The merged kubeconfig: each named entry with the directory of its file."""

    source: str
    context: str | None = None
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = dataclasses.field(
        default_factory=lambda: {"context": {}, "cluster": {}, "user": {}}
    )

    def current(self, kind: str) -> tuple[str, dict[str, Any], Path]:
        """The current context's user or cluster: its name, entry and directory."""
        if self.context is None:
            raise CredentialsError(f"kubeconfig {self.source}: no current-context")
        try:
            context, _ = self.named["context"][self.context]
            name = str(context[kind])
            entry, directory = self.named[kind][name]
        except KeyError as exc:
            raise CredentialsError(
                f"kubeconfig {self.source}: context {self.context!r} has no {kind} {exc}"
            ) from exc
        return name, entry, directory


def _entries(paths: list[Path]) -> _Entries:
    entries = _Entries(os.pathsep.join(str(p) for p in paths))
    for path in paths:
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CredentialsError(f"kubeconfig {path}: {exc}") from exc
        entries.context = entries.context or config.get("current-context")
        for kind, named in entries.named.items():
            for item in config.get(f"{kind}s") or []:
                named.setdefault(item["name"], (item.get(kind) or {}, path.parent))
    return entries


def _relative(path: Any, directory: Path) -> Any:
    """A relative path from a kubeconfig, made absolute against the file's directory."""
    if isinstance(path, str) and path and not os.path.isabs(os.path.expanduser(path)):
        return str(directory / path)
    return path


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise CredentialsError(f"token file {path}: {exc}") from exc


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` within the block (kopf's kubeconfig login reads only
    $KUBECONFIG); no await happens inside, so no other task sees it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


class Credentials:
    """What every request of the operator's client carries: the TLS context and the
    Authorization header. A token from a file is read again once it is a minute old,
    and at once after a 401 (`refresh`)."""

    def __init__(
        self,
        login: Login,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = TOKEN_MAX_AGE_SECONDS,
    ) -> None:
        self.info = login.info
        self.token_path = login.token_path
        self._clock = clock
        self._max_age = max_age
        self._read_at = clock()

    @property
    def server(self) -> str:
        return self.info.server.rstrip("/")

    def headers(self) -> dict[str, str]:
        """The Authorization header (none without credentials), with a fresh token."""
        if self.token_path is not None and self._clock() - self._read_at >= self._max_age:
            self.refresh()
        return self.info.as_http_headers()

    def refresh(self) -> bool:
        """Read the token file again; True when the token changed (worth a retry)."""
        if self.token_path is None:
            return False
        self._read_at = self._clock()
        try:
            token = _read_token(self.token_path)
        except CredentialsError as exc:
            # The current token may still be good; the next read (or a 401) tries again.
            logger.warning("keeping the current token: %s", exc)
            return False
        if token == self.info.token:
            return False
        self.info = dataclasses.replace(self.info, token=token)
        return True

"""The operator's credentials for the API server: a service account in a pod, a kubeconfig
elsewhere. kopf (its login handler) and the operator's client (`kube.Kube`) both use them.

Reading them is `agent_runtime/kubecredentials.py`, the same code the runtime logs in
with (kopf-free, so the runtime stays small): the service account's token and a
kubeconfig's `tokenFile` are a `TokenFile`, read again once a minute old and at once
after a 401, because the kubelet rotates a projected token before it expires; a
kubeconfig's relative paths are taken from its directory; a user whose credentials come
from a program (`exec`) or an `auth-provider` is refused with a message naming the
kubeconfig and the user entry, rather than failing later with 401s. This module turns
them into a `kopf.ConnectionInfo`, which kopf's own requests and `kube.Kube` both take
(TLS context, Authorization header, proxy).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import kopf

from agent_runtime import kubecredentials
from agent_runtime.kubecredentials import KubeconfigError, TokenFile


class CredentialsError(kopf.LoginError):
    """No usable credentials; the message says where they were looked for and why not."""


@dataclasses.dataclass(frozen=True)
class Login:
    """Where to connect and as whom; `token` is the file the token came from, if any."""

    info: kopf.ConnectionInfo
    token: TokenFile | None = None


def login(
    kubeconfig: str | None,
    *,
    service_account: Path = kubecredentials.SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.monotonic,
) -> Login:
    """The service account inside a pod (no kubeconfig given), the kubeconfig otherwise.

    Inside a pod a missing token is an error, not a reason to try ~/.kube/config: that
    would hide the real cause (a token not mounted) behind a kubeconfig error.
    """
    if kubeconfig is None and environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(service_account, environ, clock)
    return from_kubeconfig(kubeconfig or "~/.kube/config", clock)


def in_cluster(
    directory: Path, environ: Mapping[str, str], clock: Callable[[], float] = time.monotonic
) -> Login:
    """The pod's service account; without a CA file, the system's CAs."""
    try:
        account = kubecredentials.service_account(environ, directory, clock)
    except OSError as exc:
        raise CredentialsError(f"in a pod, but no service-account token: {exc}") from exc
    info = kopf.ConnectionInfo(
        server=account.server,
        ca_path=str(account.ca_path) if account.ca_path.exists() else None,
        token=account.token.get() or None,
        default_namespace=account.namespace,
    )
    return Login(info, account.token)


def from_kubeconfig(kubeconfig: str, clock: Callable[[], float] = time.monotonic) -> Login:
    """The current context of `kubeconfig` (a path, or several joined with os.pathsep:
    the first definition of a name wins, as with kubectl), with all of its fields that
    kopf's ConnectionInfo takes."""
    paths = [Path(p.strip()).expanduser() for p in kubeconfig.split(os.pathsep) if p.strip()]
    try:
        current = kubecredentials.read_kubeconfig(paths, program="the operator", clock=clock)
    except KubeconfigError as exc:
        raise CredentialsError(f"kubeconfig {exc}") from None
    ca, cert, key = current.certificate_authority, current.client_certificate, current.client_key
    info = kopf.ConnectionInfo(
        server=current.server,
        ca_path=str(ca) if isinstance(ca, Path) else None,
        ca_data=ca if isinstance(ca, bytes) else None,
        insecure=current.insecure_skip_tls_verify or None,
        certificate_path=str(cert) if isinstance(cert, Path) else None,
        certificate_data=cert if isinstance(cert, bytes) else None,
        private_key_path=str(key) if isinstance(key, Path) else None,
        private_key_data=key if isinstance(key, bytes) else None,
        username=current.username,
        password=current.password,
        token=current.token or (current.token_file.get() if current.token_file else None),
        default_namespace=current.namespace,
        proxy_url=current.proxy_url,
    )
    return Login(info, current.token_file)


class Credentials:
    """What every request of the operator's client carries: the TLS context and the
    Authorization header, with the token of a `TokenFile` as it is now."""

    def __init__(self, login: Login) -> None:
        self.info = login.info
        self.token = login.token

    @property
    def server(self) -> str:
        return self.info.server.rstrip("/")

    def headers(self) -> dict[str, str]:
        """The Authorization header (none without credentials), with a fresh token."""
        if self.token is not None:
            self._use(self.token.get())
        return self.info.as_http_headers()

    def refresh(self) -> bool:
        """After a 401: read the token file again; True when the token changed (worth a
        retry)."""
        if self.token is None or not self.token.refresh():
            return False
        self._use(self.token.get())
        return True

    def _use(self, token: str) -> None:
        if token != self.info.token:
            self.info = dataclasses.replace(self.info, token=token or None)

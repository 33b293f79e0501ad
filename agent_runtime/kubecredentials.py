"""Kubernetes credentials, one copy for the runtime and the operator.

Both programs talk to the API server over plain aiohttp and log in the same two ways: in
a pod with the service account the kubelet mounts, elsewhere with the current context of
a kubeconfig. This module reads both into plain values; each program turns them into
what its client takes: ``agent_runtime/kubeapi.py`` into an SSL context and a token
source, ``agentry_operator/credentials.py`` into a ``kopf.ConnectionInfo`` (for kopf and
for its own client alike).

It lives in the runtime's package because the runtime is the side that must stay small:
it imports neither kopf nor a Kubernetes client library (each would cost every agent pod
tens of MB; ``tests/unit/runtime/test_kubeapi.py`` checks the runtime's imports), and the
operator, which ships in the same image, may import it.

What both programs share, and rely on:
- a token file (the kubelet's projected service account token, a kubeconfig's
  ``tokenFile``) is read again once the token held is a minute old, because the kubelet
  rotates it (client-go re-reads as often), and at once when the API server refused it;
- relative paths in a kubeconfig entry are taken from the directory of the file that
  holds the entry, as kubectl takes them;
- a user that gets its credentials from a program (``exec``) or an identity provider
  (``auth-provider``) is refused by name, rather than failing later with 401s;
- no token, password or key is ever part of a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_MAX_AGE_SECONDS = 60.0
# Kubeconfig user fields that run a program or ask an identity provider for a token.
PLUGINS = ("exec", "auth-provider")
# Basic auth: gone from the API server since 1.19; the runtime's client does not send it.
BASIC_AUTH = ("username", "password")


class KubeconfigError(Exception):
    """A kubeconfig that gives no usable credentials: ``str()`` is ``<file>: <why>``,
    which each program prefixes in its own way; never a token."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TokenFile:
    """A token kept in a file that someone else rewrites: read at most ``max_age_seconds``
    ago, and again at once through ``refresh`` (after a 401).

    The file is read on construction, so a missing token is an error at startup. A
    re-read that fails, or finds the file empty (caught mid-write), keeps the token held
    and says so in a warning that names the file; the next try is a minute later, or at
    the next call after a ``refresh``."""

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
        """The token to send now (read again first when the one held is old)."""
        if self._clock() - self._read_at >= self._max_age:
            self._read()
        return self._token

    def refresh(self) -> bool:
        """The API server refused the token: read the file now. True when the token
        changed (the refused call is worth a retry); otherwise the next call reads it
        again, since the kubelet may be about to write the new one."""
        changed = self._read()
        if not changed:
            self._read_at = -math.inf
        return changed

    def _read(self) -> bool:
        self._read_at = self._clock()
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            logger.warning(
                "keeping the current token: %s cannot be read (%s)",
                self.path,
                exc.strerror or exc.__class__.__name__,
            )
            return False
        if not token:
            logger.warning("keeping the current token: %s is empty", self.path)
            return False
        changed = token != self._token
        self._token = token
        return changed

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"


# -- in a pod -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccount:
    """The API server's Service address and the pod's service account files."""

    server: str
    token: TokenFile
    ca_path: Path
    namespace: str | None


def service_account(
    environ: Mapping[str, str],
    directory: Path = SERVICE_ACCOUNT_DIR,
    clock: Callable[[], float] = time.monotonic,
) -> ServiceAccount:
    """The server is the address the kubelet puts in the environment (as client-go takes
    it; ``kubernetes.default.svc`` would need cluster DNS), an IPv6 address in brackets.

    OSError when the token cannot be read: each program says in its own words that the
    pod needs its token mounted."""
    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ.get("KUBERNETES_SERVICE_PORT") or "443"
    if ":" in host:
        host = f"[{host}]"
    token = TokenFile(directory / "token", clock=clock)
    namespace = directory / "namespace"
    return ServiceAccount(
        f"https://{host}:{port}",
        token,
        directory / "ca.crt",
        namespace.read_text().strip() if namespace.exists() else None,
    )


# -- a kubeconfig ---------------------------------------------------------------------------

Pem = Path | bytes
"""A certificate or key: a file, or the PEM of a kubeconfig's ``*-data`` field."""


@dataclass(frozen=True)
class CurrentContext:
    """The current context of a kubeconfig: the cluster's fields and the user's, with
    relative paths made absolute and ``*-data`` decoded. A token comes either as written
    (``token``) or as a file (``token_file``), never both."""

    source: str  # the kubeconfig file(s), for messages
    name: str
    server: str
    certificate_authority: Pem | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    namespace: str | None = None
    client_certificate: Pem | None = None
    client_key: Pem | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: TokenFile | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def read_kubeconfig(
    paths: Sequence[Path],
    *,
    program: str,
    unsupported: Sequence[str] = PLUGINS,
    clock: Callable[[], float] = time.monotonic,
) -> CurrentContext:
    """The current context of ``paths`` merged as kubectl merges them: the first
    current-context and the first entry of each name win. ``program`` ("the operator")
    is named when a user field in ``unsupported`` is refused. KubeconfigError when the
    files give no usable credentials."""
    source = os.pathsep.join(str(path) for path in paths)
    current, named = _merged(paths)
    if not current:
        raise KubeconfigError(source, "no current-context")
    context, _ = _entry(source, named, "context", current)
    cluster, cluster_dir = _entry(source, named, "cluster", context.get("cluster"))
    user_name = context.get("user")
    user, user_dir = _entry(source, named, "user", user_name) if user_name else ({}, cluster_dir)
    refused = [key for key in unsupported if key in user]
    if refused:
        raise KubeconfigError(
            source,
            f"user {user_name!r} gets its credentials from {refused[0]!r}, which {program} "
            "does not support; give it a token, tokenFile or client certificate instead",
        )
    if not cluster.get("server"):
        raise KubeconfigError(source, f"cluster {context.get('cluster')!r} has no server")
    try:
        return CurrentContext(
            source=source,
            name=current,
            server=str(cluster["server"]),
            certificate_authority=_pem(cluster_dir, cluster, "certificate-authority"),
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
            tls_server_name=cluster.get("tls-server-name"),
            proxy_url=cluster.get("proxy-url"),
            namespace=context.get("namespace"),
            client_certificate=_pem(user_dir, user, "client-certificate"),
            client_key=_pem(user_dir, user, "client-key"),
            token=user.get("token") or None,
            token_file=None if user.get("token") else _token_file(user_dir, user, clock),
            username=user.get("username"),
            password=user.get("password"),
        )
    except OSError as exc:
        raise KubeconfigError(
            source,
            f"context {current!r}: {exc.filename} cannot be read ({exc.strerror or exc})",
        ) from None
    except ValueError as exc:
        raise KubeconfigError(source, f"context {current!r}: {exc}") from None


Entries = dict[str, dict[str, tuple[dict[str, Any], Path]]]


def _merged(paths: Sequence[Path]) -> tuple[str | None, Entries]:
    """The first current-context, and each named entry with the directory of its file."""
    import yaml  # only a runtime outside a pod reads a kubeconfig

    current: str | None = None
    named: Entries = {"context": {}, "cluster": {}, "user": {}}
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise KubeconfigError(str(path), f"cannot be read ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise KubeconfigError(str(path), f"is not YAML{_where(exc)}") from None
        if not isinstance(document, dict):
            raise KubeconfigError(str(path), "is not a kubeconfig (no mapping at the top)")
        current = current or document.get("current-context")
        for kind, entries in named.items():
            for item in document.get(f"{kind}s") or []:
                if isinstance(item, dict) and isinstance(item.get(kind) or {}, dict):
                    entries.setdefault(str(item.get("name")), (item.get(kind) or {}, path.parent))
    return current, named


def _where(error: Exception) -> str:
    """`` (line 2, column 22: mapping values are not allowed here)``: PyYAML's own message
    quotes the line, which may hold a token."""
    mark = getattr(error, "problem_mark", None)
    parts = [f"line {mark.line + 1}, column {mark.column + 1}"] if mark else []
    if problem := getattr(error, "problem", None):
        parts.append(str(problem))
    return f" ({': '.join(parts)})" if parts else ""


def _entry(source: str, named: Entries, kind: str, name: Any) -> tuple[dict[str, Any], Path]:
    """The ``kind`` entry called ``name`` and the directory of its file."""
    found = named[kind].get(str(name)) if name is not None else None
    if found is None:
        raise KubeconfigError(source, f"has no {kind} entry named {name!r}")
    return found


def _resolve(directory: Path, value: str) -> Path:
    """A path from a kubeconfig entry: a relative one is relative to the entry's file."""
    given = Path(value).expanduser()
    return given if given.is_absolute() else directory / given


def _pem(directory: Path, entry: dict[str, Any], name: str) -> Pem | None:
    """``<name>-data`` decoded (ValueError when it is not base64), or ``<name>`` as a path."""
    if entry.get(f"{name}-data"):
        try:
            return base64.b64decode(entry[f"{name}-data"])
        except ValueError:
            raise ValueError(f"{name}-data is not base64") from None
    if entry.get(name):
        return _resolve(directory, entry[name])
    return None


def _token_file(
    directory: Path, user: dict[str, Any], clock: Callable[[], float]
) -> TokenFile | None:
    if not user.get("tokenFile"):
        return None
    return TokenFile(_resolve(directory, user["tokenFile"]), clock=clock)

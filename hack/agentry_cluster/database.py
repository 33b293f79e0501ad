"""The local cluster's PostgreSQL: outside the cluster, like a managed database.

`up` starts one server per cluster (``postgres.PostgresServer``, from the OS packages)
listening on loopback and on the host's address on the node link (``host_ip``, where pods
reach the host's processes), so the host and the pods reach it at the same URL; pg_hba
admits the pod network only with a password (scram).
Its data directory is a fresh one under the system temp directory (the server runs as the
``postgres`` OS user, which cannot enter root's state directory), and `down` removes it,
as `up` starts every cluster fresh. What a client needs is in `cluster.json`
(``postgres_*``): the URL of the database ``agentry`` and, for tests that want a database
of their own, the server's port, directory and superuser password.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from agentry_cluster import postgres
from agentry_cluster.layout import ClusterInfo

DATABASE = "agentry"


def server_of(info: ClusterInfo) -> postgres.PostgresServer | None:
    """A handle on the cluster's running server (stop, start, createdb), or None."""
    if not info.postgres_dir:
        return None
    return postgres.PostgresServer(
        Path(info.postgres_dir),
        info.postgres_port,
        host=listen_addresses(info.host_ip),
        allowed_cidrs=(info.pod_cidr,),
        superuser_password=info.postgres_password,
    )


def listen_addresses(host_ip: str) -> str:
    """Loopback for the host, the node link address (``host_ip``) for the pods."""
    return f"127.0.0.1,{host_ip}"


def url_for(info: ClusterInfo, database: str = DATABASE) -> str:
    """A libpq URI through ``host_ip``: the same from the host and from a pod."""
    return postgres.database_url(
        postgres.SUPERUSER, info.postgres_password, info.host_ip, info.postgres_port, database
    )


def start(info: ClusterInfo, progress: Callable[[str], None]) -> None:
    """Start the cluster's server and create the database ``agentry``; fill `info`.

    Without the server binaries the cluster comes up without a database and says why:
    only Agents on the postgres backend need it.
    """
    reason = postgres.missing_reason()
    if reason is not None:
        progress(f"no PostgreSQL for the cluster: {reason}")
        return
    info.postgres_dir = tempfile.mkdtemp(prefix=f"agentry-postgres-{info.name}-")
    info.postgres_port = postgres.free_port()
    info.postgres_password = secrets.token_urlsafe(24)
    server = server_of(info)
    assert server is not None
    server.start()
    server.createdb(DATABASE)
    info.postgres_url = url_for(info)
    progress(f"PostgreSQL on {info.host_ip}:{info.postgres_port} (database {DATABASE})")


def stop(info: ClusterInfo, progress: Callable[[str], None]) -> None:
    """Stop the server and remove its data directory (the next `up` starts afresh)."""
    server = server_of(info)
    if server is None:
        return
    with contextlib.suppress(postgres.PostgresError, OSError):
        server.stop(mode="fast")
        progress(f"stopped PostgreSQL ({info.host_ip}:{info.postgres_port})")
    shutil.rmtree(server.data_dir, ignore_errors=True)

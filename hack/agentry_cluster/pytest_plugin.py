"""pytest fixtures for tests on the local cluster (registered as a pytest11 entry point).

`cluster` (session scope) brings one cluster up per test run in a temporary state
directory and takes it down at the end; with `AGENTRY_CLUSTER_DIR=<state dir>` it reuses
a cluster that is already running (started by `agentry-cluster up`) and leaves it running.
`namespace` gives each test a fresh namespace. On a machine that cannot run the cluster
(no root, no binaries and no Go) the tests that use them are skipped with the reason.
`postgres_server` runs one PostgreSQL server per test process (per xdist worker) and
`postgres_url` gives each test its own database on it. `cluster_postgres` is the server
that `up` started beside the cluster (reachable from pods at the host address `host_ip`), and
`cluster_database_url` a fresh database on it per test, as pods must name it.

Imports stay light: this module is loaded by every pytest run in the project.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentry_cluster.layout import StateLayout, read_info

if TYPE_CHECKING:
    from agentry_cluster.postgres import PostgresServer

REUSE_ENV = "AGENTRY_CLUSTER_DIR"


class CommandFailed(subprocess.CalledProcessError):
    """A kubectl or helm call that failed; its message carries the command's output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@dataclass
class Cluster:
    """A running local cluster as tests see it."""

    state_dir: Path
    info: dict[str, Any]
    kubeconfig: Path = field(init=False)
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.kubeconfig = StateLayout(self.state_dir).admin_kubeconfig
        self.bin_dir = Path(self.info["bin_dir"])

    def env(self) -> dict[str, str]:
        helm_home = StateLayout(self.state_dir).helm_home
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")]),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self._run("kubectl", args, check=check, input=input)

    def helm(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self._run("helm", args, check=check, input=input)

    def _run(
        self, tool: str, args: tuple[str, ...], *, check: bool, input: str | None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        result = subprocess.run(
            cmd, input=input, capture_output=True, text=True, env=self.env(), timeout=300
        )
        if check and result.returncode != 0:
            raise CommandFailed(result.returncode, cmd, result.stdout, result.stderr)
        return result


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local cluster needs root (it creates a network bridge, namespaces and mounts)"
    return None


def _reuse(state_dir: Path) -> Cluster:
    from agentry_cluster import controlplane

    layout = StateLayout(state_dir.absolute())
    info = read_info(layout)
    if info is None or not controlplane.is_running(layout):
        raise pytest.UsageError(f"{REUSE_ENV}={state_dir}: no running cluster there")
    return Cluster(layout.root, _info_dict(layout))


def _info_dict(layout: StateLayout) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(layout.cluster_json.read_text())
    return data


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One local cluster for the whole session (or the running one named by AGENTRY_CLUSTER_DIR)."""
    if reuse := os.environ.get(REUSE_ENV):
        yield _reuse(Path(reuse))
        return
    if reason := _skip_reason():
        pytest.skip(reason)
    from agentry_cluster import binaries, controlplane
    from agentry_cluster.errors import CannotRunHere

    try:
        bin_dir = binaries.ensure()
    except CannotRunHere as err:
        pytest.skip(str(err))
    # Not under pytest's basetemp: pytest prunes old run directories there, and another
    # session on the same machine could delete this cluster's files while it runs.
    layout = StateLayout(Path(tempfile.mkdtemp(prefix="agentry-pytest-cluster-")))
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[cluster {time.monotonic() - started:5.1f}s] {message}", file=sys.stderr)

    controlplane.up(layout, "pytest", bin_dir, progress=progress)
    try:
        yield Cluster(layout.root, _info_dict(layout))
    finally:
        controlplane.down(layout, progress=progress)
        print(f"[cluster] logs kept in {layout.logs}", file=sys.stderr)


@contextlib.contextmanager
def scratch_namespace(cluster: Cluster, prefix: str = "t") -> Iterator[str]:
    """A fresh namespace `<prefix>-<random>`, ready for pods (its default ServiceAccount is
    in place, or the first pod would be refused), and deleted without waiting afterwards."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no default ServiceAccount in namespace {name} after 30s")
        time.sleep(0.1)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test (see `scratch_namespace`)."""
    with scratch_namespace(cluster) as name:
        yield name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server per test process (per xdist worker), removed at the end.

    Skipped with the reason when the server binaries are missing (CI installs the OS
    packages). The data directory is not under pytest's basetemp: that directory is
    private to root, and the server runs as the ``postgres`` OS user.
    """
    from agentry_cluster import postgres

    if reason := postgres.missing_reason():
        print(f"[postgres] skipping: {reason}", file=sys.stderr)
        pytest.skip(reason)
    with postgres.temporary_server("agentry-pytest-pg-") as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test on the worker's server: its libpq URI."""
    name = f"t_{secrets.token_hex(6)}"
    url = postgres_server.createdb(name)
    try:
        yield url
    finally:
        postgres_server.dropdb(name)


@pytest.fixture(scope="session")
def cluster_postgres(cluster: Cluster) -> PostgresServer:
    """The cluster's own PostgreSQL (`agentry_cluster.database`), as a handle that can stop,
    start and create databases; skipped with the reason when the cluster has none."""
    from agentry_cluster import database, postgres
    from agentry_cluster.layout import ClusterInfo

    server = database.server_of(ClusterInfo.from_dict(cluster.info))
    if server is None:
        reason = postgres.missing_reason() or "the cluster was started without PostgreSQL"
        pytest.skip(reason)
    return server


@pytest.fixture
def cluster_database_url(cluster: Cluster, cluster_postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the cluster's PostgreSQL, its URI through `host_ip`
    (what a pod connects to); dropped after the test."""
    from agentry_cluster import database, postgres
    from agentry_cluster.layout import ClusterInfo

    name = f"e2e_{secrets.token_hex(6)}"
    cluster_postgres.createdb(name)
    try:
        yield database.url_for(ClusterInfo.from_dict(cluster.info), name)
    finally:
        with contextlib.suppress(postgres.PostgresError):
            cluster_postgres.dropdb(name)

"""The worker for one pod bound to this node: network namespace, volumes, containers,
status, and graceful termination. The node starts one worker per pod UID and tells it
when the pod changes or is being deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from agentry_cluster.node import dns, envs, network, volumes
from agentry_cluster.node.apiclient import ApiClient, ApiError
from agentry_cluster.node.atomic_writer import write_volume
from agentry_cluster.node.containers import ContainerRunner
from agentry_cluster.node.errors import ContainerConfigError
from agentry_cluster.node.status import build_pod_status

Json = dict[str, Any]
log = logging.getLogger("agentry.node.pods")

REFRESH_SECONDS = 2.0
TOKEN_REFRESH_FRACTION = 0.8


@dataclass
class NodeServices:
    """What every pod worker shares."""

    api: ApiClient
    facts: envs.NodeFacts
    pool: network.IpPool
    bridge: str
    node_netns: str
    gateway: str
    dns: dns.ClusterDns
    node_dir: Path
    ca_pem: bytes
    backoff_base: float
    session: aiohttp.ClientSession


def mount_point_record(node_dir: Path) -> Path:
    """Where launchers note the mount points they had to create on the host."""
    return node_dir / "created-mount-points"


def mount_points_in_use(proc: Path = Path("/proc")) -> set[str]:
    """Every mount point of every process on the machine (any mount namespace)."""
    points: set[str] = set()
    for info in proc.glob("[0-9]*/mountinfo"):
        with contextlib.suppress(OSError):
            for line in info.read_text().splitlines():
                fields = line.split()
                if len(fields) > 4:
                    points.add(fields[4].replace("\\040", " "))
    return points


def remove_created_mount_points(node_dir: Path, in_use: set[str] | None = None) -> None:
    """Remove the empty mount points pods left on the host (deepest first); call it only
    when no pod runs, since removing a mount point detaches it in every namespace.

    The host paths are shared by every cluster on the machine (another cluster's pods
    mount over /var/run/secrets too), so a path that is a mount point, or holds one, in
    any process is kept: removing it would take the mounts out of those pods."""
    record = mount_point_record(node_dir)
    try:
        paths = set(record.read_text().split())
    except FileNotFoundError:
        return
    mounted = {os.path.realpath(p) for p in (mount_points_in_use() if in_use is None else in_use)}
    for path in sorted(paths, key=lambda p: -len(Path(p).parts)):
        real = os.path.realpath(path)
        if any(m == real or m.startswith(real.rstrip("/") + "/") for m in mounted):
            continue
        with contextlib.suppress(OSError):
            target = Path(path)
            if target.is_dir() and not target.is_symlink():
                target.rmdir()
            elif target.is_file() and target.stat().st_size == 0:
                target.unlink()
    record.unlink(missing_ok=True)


# The software pods run (the venv with the console scripts, and the source tree of an
# editable install): a pod volume mounted over one of their parents (an emptyDir at /tmp,
# with the repository cloned under /tmp) would hide them, so the launcher binds them back.
NODE_SOFTWARE: tuple[Path, ...] = tuple(
    dict.fromkeys([Path(sys.prefix), Path(__file__).resolve().parents[3]])
)


class PodWorker:
    def __init__(self, services: NodeServices, pod: Json) -> None:
        self.services = services
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.grace_seconds = float(spec.get("terminationGracePeriodSeconds", 30))
        self.backoff_base = services.backoff_base
        self.session = services.session
        self.pod_dir = services.node_dir / "pods" / self.uid
        self.log_root = services.node_dir / "logs" / f"{self.namespace}_{self.name}_{self.uid}"
        self.pod_ip = ""
        self.netns = ""
        self.net: network.PodNetwork | None = None
        self.start_time = datetime.now(UTC)
        self.created = time.monotonic()
        self.init_runners = [
            ContainerRunner(self, c, init=True) for c in spec.get("initContainers") or []
        ]
        self.runners = [ContainerRunner(self, c) for c in spec.get("containers") or []]
        self._raw: dict[envs.ObjectKey, Json] = {}
        self._tokens: dict[volumes.TokenKey, str] = {}
        self._token_due: dict[volumes.TokenKey, float] = {}
        self._claim_paths: dict[str, Path] = {}
        self._volume_errors: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._terminate = asyncio.Event()
        self._deleted_from_api = False
        self._last_status: Json | None = None
        self.task: asyncio.Task[None] | None = None
        self.ready_logged = False
        self._network_ready = False
        self._host_paths_checked: set[str] = set()

    # PodContext ---------------------------------------------------------------------
    def container_dir(self, name: str) -> Path:
        return self.log_root / name

    def notify(self) -> None:
        self._changed.set()

    def launch_spec(self, container: Json) -> Json:
        """Environment, command and mounts for one start of `container`."""
        for vm in container.get("volumeMounts") or []:
            if vm["name"] in self._volume_errors:
                raise ContainerConfigError(self._volume_errors[vm["name"]])
        decoded = {key: envs.object_data(key.kind, obj) for key, obj in self._raw.items()}
        env = envs.resolve_env(self.pod, container, decoded, self.services.facts, self.pod_ip)
        plan = volumes.mount_plan(self.pod, container, self.pod_dir, self._claim_paths)
        spec = self.pod["spec"]
        return {
            "argv": envs.expand_command(container, env),
            "env": env,
            "workingDir": container.get("workingDir") or "/",
            "hostname": (spec.get("hostname") or self.name)[:63],
            "mountPointRecord": str(mount_point_record(self.services.node_dir)),
            "keepVisible": [str(path) for path in NODE_SOFTWARE],
            "mounts": [
                {
                    "target": m.target,
                    "source": str(m.source) if m.source else None,
                    "readOnly": m.read_only,
                }
                for m in plan
            ],
        }

    # Control from the node ----------------------------------------------------------
    def update(self, pod: Json) -> None:
        self.pod["metadata"] = pod["metadata"]
        if pod["metadata"].get("deletionTimestamp"):
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is not None:
                self.grace_seconds = float(grace)
            self._terminate.set()

    def deleted(self) -> None:
        """The pod object is gone (force deletion): stop at once, nothing to delete."""
        self._deleted_from_api = True
        self.grace_seconds = min(self.grace_seconds, 2.0)
        self._terminate.set()

    async def shutdown(self) -> None:
        """The node is stopping: end the containers, keep the pod object."""
        self._deleted_from_api = True
        self._terminate.set()
        if self.task is not None:
            await self.task

    # The pod's life -----------------------------------------------------------------
    async def run(self) -> None:
        status_task = asyncio.create_task(self._status_loop())
        life = asyncio.create_task(self._live())
        try:
            await self._terminate.wait()
        finally:
            await self._stop_containers()
            life.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await life
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task
            await self._cleanup()
        if not self._deleted_from_api:
            await self._delete_from_api()

    async def _live(self) -> None:
        while True:
            try:
                await self._prepare()
                break
            except Exception:
                log.exception("preparing %s/%s (retrying)", self.namespace, self.name)
                await asyncio.sleep(REFRESH_SECONDS)
        refresher = asyncio.create_task(self._refresh_loop())
        try:
            for runner in self.init_runners:
                await runner.run()
                if not runner.succeeded:
                    return
            self.notify()
            await asyncio.gather(*(r.run() for r in self.runners))
            # Every container finished for good (a Job's pod): free the address and the
            # namespace at once, like the kubelet's sandbox; the status stays until deletion.
            if self.net is not None:
                await network.delete(self.net)
            self.services.pool.release(self.uid)
            await asyncio.Event().wait()
        finally:
            refresher.cancel()

    async def _prepare(self) -> None:
        if not self._network_ready:
            await self._write_status()
            await self._setup_network()
            self._network_ready = True
        await self._refresh_sources()

    async def _setup_network(self) -> None:
        svc = self.services
        self.pod_ip = svc.pool.allocate(self.uid)
        self.net = network.pod_network(
            svc.bridge, self.uid, self.pod_ip, svc.pool.prefix, svc.gateway, svc.node_netns
        )
        self.netns = self.net.netns
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        (self.pod_dir / "network.json").write_text(json.dumps(self.net.__dict__))
        resolv = dns.pod_resolv_conf(self.pod, svc.dns).render()
        hosts = dns.hosts_file(self.pod, self.pod_ip, svc.dns.domain)
        await network.create(self.net, resolv, hosts)
        self.notify()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self._refresh_sources()
            except (ApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("refreshing volumes of %s/%s: %s", self.namespace, self.name, exc)

    async def _refresh_sources(self) -> None:
        """Fetch referenced objects, tokens and claims; rewrite volumes that changed."""
        api = self.services.api
        raw: dict[envs.ObjectKey, Json] = {}
        for key in envs.referenced_objects(self.pod):
            plural = "secrets" if key.kind == "Secret" else "configmaps"
            obj = await api.get_or_none(f"/api/v1/namespaces/{self.namespace}/{plural}/{key.name}")
            if obj is not None:
                raw[key] = obj
        root_ca = envs.ObjectKey("ConfigMap", "kube-root-ca.crt")
        if root_ca in envs.referenced_objects(self.pod) and root_ca not in raw:
            raw[root_ca] = {"data": {"ca.crt": self.services.ca_pem.decode()}}
        self._raw = raw
        await self._refresh_tokens()
        await self._refresh_claims()
        self._write_volumes()

    async def _refresh_tokens(self) -> None:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        for key in volumes.token_requests(self.pod):
            if key in self._tokens and time.monotonic() < self._token_due[key]:
                continue
            body: Json = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": key.expiration_seconds,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": self.name,
                        "uid": self.uid,
                    },
                },
            }
            if key.audience:
                body["spec"]["audiences"] = [key.audience]
            try:
                result = await self.services.api.create(
                    f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token", body
                )
            except ApiError as exc:
                log.warning("token for %s/%s: %s", self.namespace, self.name, exc)
                continue
            self._tokens[key] = result["status"]["token"]
            self._token_due[key] = (
                time.monotonic() + TOKEN_REFRESH_FRACTION * key.expiration_seconds
            )

    async def _refresh_claims(self) -> None:
        api = self.services.api
        for v in self.pod["spec"].get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim or claim in self._claim_paths:
                continue
            pvc = await api.get_or_none(
                f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{claim}"
            )
            volume_name = ((pvc or {}).get("spec") or {}).get("volumeName")
            if not volume_name:
                continue
            pv = await api.get_or_none(f"/api/v1/persistentvolumes/{volume_name}")
            spec = (pv or {}).get("spec") or {}
            path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
            if path:
                Path(path).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - local
                self._claim_paths[claim] = Path(path)

    def _write_volumes(self) -> None:
        errors: dict[str, str] = {}
        for v in self.pod["spec"].get("volumes") or []:
            kind = volumes.volume_kind(v)
            directory = volumes.volume_dir(self.pod_dir, v["name"])
            try:
                if kind in volumes.FILE_KINDS:
                    files = volumes.volume_files(
                        v, self.pod, self._raw, self._tokens, self.services.facts, self.pod_ip
                    )
                    write_volume(directory, files)
                elif kind == "emptyDir":
                    directory.mkdir(parents=True, exist_ok=True)
                elif kind == "hostPath" and v["name"] not in self._host_paths_checked:
                    # Like the kubelet: created once, when the pod starts.
                    if v["hostPath"].get("type") == "DirectoryOrCreate":
                        Path(v["hostPath"]["path"]).mkdir(parents=True, exist_ok=True)
                    self._host_paths_checked.add(v["name"])
            except ContainerConfigError as exc:
                errors[v["name"]] = f"volume {v['name']!r}: {exc}"
        self._volume_errors = errors

    # Status -------------------------------------------------------------------------
    async def _status_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.05)  # coalesce a burst of changes into one write
            self._changed.clear()
            try:
                await self._write_status()
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("status of %s/%s: %s", self.namespace, self.name, exc)
                self._changed.set()
                await asyncio.sleep(1)

    async def _write_status(self) -> None:
        pod = dict(self.pod, status=self._last_status or self.pod.get("status") or {})
        status = build_pod_status(
            pod,
            [r.snapshot for r in self.init_runners],
            [r.snapshot for r in self.runners],
            self.pod_ip,
            self.services.facts.host_ip,
            self.start_time,
            datetime.now(UTC),
        )
        if status == self._last_status:
            return
        await self.services.api.merge_patch(
            f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", {"status": status}
        )
        self._last_status = status
        ready: Json = next((c for c in status["conditions"] if c["type"] == "Ready"), {})
        if ready.get("status") == "True" and not self.ready_logged:
            self.ready_logged = True
            log.info(
                "pod %s/%s Ready %.2fs after the node saw it",
                self.namespace,
                self.name,
                time.monotonic() - self.created,
            )

    # Ending -------------------------------------------------------------------------
    async def _stop_containers(self) -> None:
        grace = self.grace_seconds
        runners = self.runners + self.init_runners
        await asyncio.gather(*(r.stop(grace) for r in runners), return_exceptions=True)

    async def _cleanup(self) -> None:
        if self.net is not None:
            await network.delete(self.net)
        self.services.pool.release(self.uid)
        shutil.rmtree(self.pod_dir, ignore_errors=True)
        # Kept, as a node's journal keeps them, for whoever reads the cluster's logs after
        # the pod is gone (the e2e suite scans them for secrets at its end); they go with
        # the node's next start or the cluster.
        gone = self.services.node_dir / "logs-of-deleted-pods" / self.log_root.name
        with contextlib.suppress(OSError):
            gone.parent.mkdir(exist_ok=True)
            self.log_root.rename(gone)
        shutil.rmtree(self.log_root, ignore_errors=True)

    async def _delete_from_api(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            await self.services.api.delete(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("deleting %s/%s: %s", self.namespace, self.name, exc)

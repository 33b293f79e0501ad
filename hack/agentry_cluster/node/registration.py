"""The Node object and its Lease: what makes the control plane see a healthy node.

`build_node` is pure (tests check its addresses and ports); `NodeHeartbeat` creates or
updates the Node, renews `kube-node-lease/<node>` every 10 s and refreshes the Ready
condition's heartbeat now and then, as the kubelet does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp

from agentry_cluster.node.apiclient import ApiClient, ApiError

Json = dict[str, Any]
log = logging.getLogger("agentry.node.registration")

KUBELET_VERSION = "v1.35.4"
LEASE_SECONDS = 40
RENEW_SECONDS = 10.0
STATUS_SECONDS = 60.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def capacity() -> dict[str, str]:
    cpus = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": str(cpus),
        "memory": f"{memory // 1024}Ki",
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }


def node_conditions(now: str) -> list[Json]:
    def cond(kind: str, status: str, reason: str, message: str) -> Json:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "enough memory"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "enough disk"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "enough PIDs"),
        cond("Ready", "True", "KubeletReady", "agentry process node is posting ready status"),
    ]


def build_node_status(host_ip: str, kubelet_port: int, now: str) -> Json:
    caps = capacity()
    return {
        "capacity": caps,
        "allocatable": caps,
        "conditions": node_conditions(now),
        "addresses": [
            {"type": "InternalIP", "address": host_ip},
            {"type": "Hostname", "address": socket.gethostname()},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": platform.release(),
            "osImage": "agentry process node",
            "containerRuntimeVersion": "process://0.1.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64" if platform.machine() in ("x86_64", "amd64") else "arm64",
        },
    }


def build_node(name: str, host_ip: str, kubelet_port: int, now: str) -> Json:
    arch = "amd64" if platform.machine() in ("x86_64", "amd64") else "arm64"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
                "agentry.dev/process-node": "true",
            },
        },
        "spec": {},
        "status": build_node_status(host_ip, kubelet_port, now),
    }


def build_lease(node: Json, now: str) -> Json:
    name = node["metadata"]["name"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
            ],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
    }


class NodeHeartbeat:
    def __init__(self, api: ApiClient, name: str, host_ip: str, kubelet_port: int) -> None:
        self.api = api
        self.name = name
        self.host_ip = host_ip
        self.kubelet_port = kubelet_port

    async def register(self) -> Json:
        """Create the Node, or bring an existing one's status up to date."""
        body = build_node(self.name, self.host_ip, self.kubelet_port, _now())
        try:
            return await self.api.create("/api/v1/nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
        return await self.update_status()

    async def update_status(self) -> Json:
        status = build_node_status(self.host_ip, self.kubelet_port, _now())
        return await self.api.merge_patch(f"/api/v1/nodes/{self.name}/status", {"status": status})

    async def renew_lease(self, node: Json) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        now = _micro_now()
        try:
            await self.api.merge_patch(
                path, {"spec": {"renewTime": now, "holderIdentity": self.name}}
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.api.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                build_lease(node, now),
            )

    async def run(self, node: Json) -> None:
        loop = asyncio.get_running_loop()
        last_status = loop.time()
        while True:
            try:
                await self.renew_lease(node)
                if loop.time() - last_status > STATUS_SECONDS:
                    node = await self.update_status()
                    last_status = loop.time()
            except (ApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("node heartbeat: %s", exc)
            await asyncio.sleep(RENEW_SECONDS)

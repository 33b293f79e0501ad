"""The scheduler half of the node: bind every unscheduled pod to this node, and give each
claim the pod uses a PersistentVolume first (a hostPath directory under the node's state
directory, pre-bound to the claim; the controller manager's persistentvolume-binder
completes the binding). Runs with the scheduler's identity.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agentry_cluster.node.apiclient import ApiClient, ApiError
from agentry_cluster.node.watching import watch_forever

Json = dict[str, Any]
log = logging.getLogger("agentry.node.scheduling")

DEFAULT_SCHEDULER = "default-scheduler"


def wants_binding(pod: Json) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    )


def build_binding(pod: Json, node_name: str) -> Json:
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


def build_volume(pvc: Json, pv_root: Path) -> Json:
    """A hostPath PV that satisfies `pvc` and names it in its claimRef."""
    meta = pvc["metadata"]
    spec = pvc.get("spec") or {}
    name = f"pvc-{meta['uid']}"
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": {"agentry.dev/process-node": "true"},
            "annotations": {"pv.kubernetes.io/provisioned-by": "agentry.dev/process-node"},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.get("storageClassName") or "",
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(pv_root / name), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


class Scheduler:
    def __init__(self, api: ApiClient, node_name: str, pv_root: Path) -> None:
        self.api = api
        self.node_name = node_name
        self.pv_root = pv_root

    async def run(self) -> None:
        await watch_forever(
            self.api, "/api/v1/pods", {"fieldSelector": "spec.nodeName="}, self._on_event, log
        )

    async def _on_event(self, kind: str, pod: Json) -> None:
        if kind in ("ADDED", "MODIFIED") and wants_binding(pod):
            try:
                await self.schedule(pod)
            except ApiError as exc:
                if exc.status != 409:
                    log.warning("scheduling %s: %s", pod["metadata"]["name"], exc)

    async def schedule(self, pod: Json) -> None:
        meta = pod["metadata"]
        for v in pod["spec"].get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                await self._provide_volume(meta["namespace"], claim)
        await self.api.create(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
            build_binding(pod, self.node_name),
        )
        log.info("bound %s/%s to %s", meta["namespace"], meta["name"], self.node_name)

    async def _provide_volume(self, namespace: str, claim: str) -> None:
        pvc = await self.api.get_or_none(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
        )
        if pvc is None or (pvc.get("spec") or {}).get("volumeName"):
            return
        pv = build_volume(pvc, self.pv_root)
        (self.pv_root / pv["metadata"]["name"]).mkdir(parents=True, exist_ok=True)
        try:
            await self.api.create("/api/v1/persistentvolumes", pv)
            log.info("created %s for claim %s/%s", pv["metadata"]["name"], namespace, claim)
        except ApiError as exc:
            if exc.status != 409:
                raise

"""What each pod volume contains and where each container sees it.

Pure: `volume_files` turns a secret, configMap, downwardAPI or projected volume into the
files to write (given the objects and tokens the worker fetched); `mount_plan` lists the
mounts the launcher performs in the pod's mount namespace, tmpfs over /var/run/secrets
first, then every volumeMount with parents before children.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentry_cluster.node.envs import NodeFacts, ObjectKey, field_value
from agentry_cluster.node.errors import ContainerConfigError

Json = dict[str, Any]

SECRETS_TMPFS = "/var/run/secrets"
DEFAULT_MODE = 0o644
# Volumes the kubelet always mounts read-only, whatever the volumeMount says.
READ_ONLY_KINDS = frozenset({"secret", "configMap", "projected", "downwardAPI"})
FILE_KINDS = READ_ONLY_KINDS


@dataclass(frozen=True)
class FileSpec:
    data: bytes
    mode: int


@dataclass(frozen=True)
class TokenKey:
    """One projected service-account token request: audience and lifetime."""

    audience: str
    expiration_seconds: int


@dataclass(frozen=True)
class Mount:
    """A mount in the pod's namespace: a bind of `source` or a tmpfs (source None)."""

    target: str
    source: Path | None
    read_only: bool


def volume_kind(volume: Json) -> str:
    for kind in (
        "secret",
        "configMap",
        "projected",
        "downwardAPI",
        "emptyDir",
        "persistentVolumeClaim",
        "hostPath",
    ):
        if kind in volume:
            return kind
    raise ContainerConfigError(f"volume {volume.get('name')!r}: unsupported volume type")


def token_requests(pod: Json) -> set[TokenKey]:
    """Every serviceAccountToken projection in the pod (the worker asks the API for each)."""
    found: set[TokenKey] = set()
    for v in (pod.get("spec") or {}).get("volumes") or []:
        for src in (v.get("projected") or {}).get("sources") or []:
            sat = src.get("serviceAccountToken")
            if sat is not None:
                found.add(
                    TokenKey(sat.get("audience", ""), int(sat.get("expirationSeconds", 3600)))
                )
    return found


def _decoded(kind: str, obj: Json) -> dict[str, bytes]:
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def _key_files(
    kind: str, ref_name: str, spec: Json, raw: Mapping[ObjectKey, Json], default_mode: int
) -> dict[str, FileSpec]:
    obj = raw.get(ObjectKey(kind, ref_name))
    if obj is None:
        if spec.get("optional"):
            return {}
        raise ContainerConfigError(f'{kind.lower()} "{ref_name}" not found')
    data = _decoded(kind, obj)
    items = spec.get("items")
    if not items:
        return {k: FileSpec(v, default_mode) for k, v in data.items()}
    files: dict[str, FileSpec] = {}
    for item in items:
        if item["key"] not in data:
            if spec.get("optional"):
                continue
            raise ContainerConfigError(f'{kind} "{ref_name}" has no key {item["key"]!r}')
        files[item["path"]] = FileSpec(data[item["key"]], int(item.get("mode", default_mode)))
    return files


def _downward_files(
    items: list[Json], pod: Json, node: NodeFacts, pod_ip: str, default_mode: int
) -> dict[str, FileSpec]:
    files = {}
    for item in items:
        if "fieldRef" not in item:
            continue
        value = field_value(pod, item["fieldRef"]["fieldPath"], node, pod_ip)
        files[item["path"]] = FileSpec(value.encode(), int(item.get("mode", default_mode)))
    return files


def volume_files(
    volume: Json,
    pod: Json,
    raw: Mapping[ObjectKey, Json],
    tokens: Mapping[TokenKey, str],
    node: NodeFacts,
    pod_ip: str,
) -> dict[str, FileSpec]:
    """The files of a secret, configMap, downwardAPI or projected volume, by relative path."""
    kind = volume_kind(volume)
    body = volume[kind]
    mode = int(body.get("defaultMode", DEFAULT_MODE))
    if kind == "secret":
        return _key_files("Secret", body["secretName"], body, raw, mode)
    if kind == "configMap":
        return _key_files("ConfigMap", body["name"], body, raw, mode)
    if kind == "downwardAPI":
        return _downward_files(body.get("items") or [], pod, node, pod_ip, mode)
    if kind != "projected":
        raise ValueError(f"volume {volume['name']!r} ({kind}) holds no generated files")
    files: dict[str, FileSpec] = {}
    for src in body.get("sources") or []:
        if "secret" in src:
            files.update(_key_files("Secret", src["secret"]["name"], src["secret"], raw, mode))
        elif "configMap" in src:
            cm = src["configMap"]
            files.update(_key_files("ConfigMap", cm["name"], cm, raw, mode))
        elif "downwardAPI" in src:
            items = src["downwardAPI"].get("items") or []
            files.update(_downward_files(items, pod, node, pod_ip, mode))
        elif "serviceAccountToken" in src:
            sat = src["serviceAccountToken"]
            key = TokenKey(sat.get("audience", ""), int(sat.get("expirationSeconds", 3600)))
            if key not in tokens:
                raise ContainerConfigError("service account token not issued yet")
            files[sat["path"]] = FileSpec(tokens[key].encode(), mode)
    return files


def volume_dir(pod_dir: Path, name: str) -> Path:
    return pod_dir / "volumes" / name


def mount_plan(
    pod: Json, container: Json, pod_dir: Path, claim_paths: Mapping[str, Path]
) -> list[Mount]:
    """The mounts for one container, in the order the launcher must make them."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        volume = volumes.get(vm["name"])
        if volume is None:
            raise ContainerConfigError(f"volumeMount {vm['name']!r} names no pod volume")
        kind = volume_kind(volume)
        read_only = bool(vm.get("readOnly")) or kind in READ_ONLY_KINDS
        if kind == "persistentVolumeClaim":
            claim = volume[kind]["claimName"]
            if claim not in claim_paths:
                raise ContainerConfigError(f'persistentvolumeclaim "{claim}" is not bound')
            source = claim_paths[claim]
            read_only = read_only or bool(volume[kind].get("readOnly"))
        elif kind == "hostPath":
            source = Path(volume[kind]["path"])
        else:
            source = volume_dir(pod_dir, vm["name"])
        if vm.get("subPath"):
            source = source / vm["subPath"]
        mounts.append(Mount(vm["mountPath"].rstrip("/") or "/", source, read_only))
    mounts.sort(key=lambda m: len(Path(m.target).parts))
    return [Mount(SECRETS_TMPFS, None, False), *mounts]

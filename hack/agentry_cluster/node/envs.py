"""A container's environment and command line, the way the kubelet computes them.

Pure: the pod worker fetches every Secret and ConfigMap the pod references first
(`referenced_objects`), then calls `resolve_env` and `expand_command` with what it found.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentry_cluster.node.errors import ContainerConfigError

Json = dict[str, Any]

# The kubelet skips envFrom keys that are not C identifiers (it records an event).
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


@dataclass(frozen=True)
class NodeFacts:
    """What the node adds to every container: its name, the API server, its own PATH."""

    node_name: str
    host_ip: str
    api_host: str
    api_port: int
    path: str
    home: str = "/root"


@dataclass(frozen=True)
class ObjectKey:
    kind: str  # "Secret" or "ConfigMap"
    name: str


# Decoded string data of the objects the worker could fetch; absent keys were not found.
Objects = Mapping[ObjectKey, Mapping[str, str]]


def object_data(kind: str, obj: Json) -> dict[str, str]:
    """A Secret's or ConfigMap's values as text (Secrets decoded from base64)."""
    if kind == "Secret":
        raw = obj.get("data") or {}
        out = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in raw.items()}
        out.update(obj.get("stringData") or {})
        return out
    out = dict(obj.get("data") or {})
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v).decode("utf-8", "replace")
    return out


def referenced_objects(pod: Json) -> set[ObjectKey]:
    """Every Secret and ConfigMap a pod names in env, envFrom and volumes."""
    spec = pod.get("spec") or {}
    found: set[ObjectKey] = set()
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    for c in containers:
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            if "secretKeyRef" in vf:
                found.add(ObjectKey("Secret", vf["secretKeyRef"]["name"]))
            if "configMapKeyRef" in vf:
                found.add(ObjectKey("ConfigMap", vf["configMapKeyRef"]["name"]))
        for ef in c.get("envFrom") or []:
            if "secretRef" in ef:
                found.add(ObjectKey("Secret", ef["secretRef"]["name"]))
            if "configMapRef" in ef:
                found.add(ObjectKey("ConfigMap", ef["configMapRef"]["name"]))
    for v in spec.get("volumes") or []:
        if "secret" in v:
            found.add(ObjectKey("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            found.add(ObjectKey("ConfigMap", v["configMap"]["name"]))
        for src in (v.get("projected") or {}).get("sources") or []:
            if "secret" in src:
                found.add(ObjectKey("Secret", src["secret"]["name"]))
            if "configMap" in src:
                found.add(ObjectKey("ConfigMap", src["configMap"]["name"]))
    return found


def field_value(pod: Json, path: str, node: NodeFacts, pod_ip: str) -> str:
    """The value of a downward-API `fieldRef.fieldPath`."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": node.host_ip,
        "status.hostIPs": node.host_ip,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ContainerConfigError(f"unsupported fieldRef.fieldPath {path!r}")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: unknown names stay as written, `$$` escapes `$`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def _lookup(objects: Objects, kind: str, ref: Json) -> Mapping[str, str] | None:
    data = objects.get(ObjectKey(kind, ref["name"]))
    if data is None and not ref.get("optional"):
        raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    return data


def base_env(pod: Json, node: NodeFacts) -> dict[str, str]:
    """What every container gets before its own env: PATH, HOSTNAME, in-cluster config."""
    spec = pod.get("spec") or {}
    host = spec.get("hostname") or (pod.get("metadata") or {}).get("name", "")
    return {
        "PATH": node.path,
        "HOME": node.home,
        "HOSTNAME": host,
        "KUBERNETES_SERVICE_HOST": node.api_host,
        "KUBERNETES_SERVICE_PORT": str(node.api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(node.api_port),
        "KUBERNETES_PORT": f"tcp://{node.api_host}:{node.api_port}",
    }


def resolve_env(
    pod: Json, container: Json, objects: Objects, node: NodeFacts, pod_ip: str
) -> dict[str, str]:
    """The container's environment: node defaults, then envFrom in order, then env.

    Raises `ContainerConfigError` for a missing, non-optional Secret, ConfigMap or key.
    """
    env = base_env(pod, node)
    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "secretRef" in ef:
            data = _lookup(objects, "Secret", ef["secretRef"])
        elif "configMapRef" in ef:
            data = _lookup(objects, "ConfigMap", ef["configMapRef"])
        else:
            data = None
        for key, value in sorted((data or {}).items()):
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = value
    for e in container.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = expand(e.get("value", ""), env)
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"]["fieldPath"], node, pod_ip)
        elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
            kind, ref = (
                ("Secret", vf["secretKeyRef"])
                if "secretKeyRef" in vf
                else ("ConfigMap", vf["configMapKeyRef"])
            )
            data = _lookup(objects, kind, ref)
            if data is None:
                continue
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(
                    f"couldn't find key {ref['key']} in {kind} {ref['name']}"
                )
            env[name] = data[ref["key"]]
        elif "resourceFieldRef" in vf:
            env[name] = _resource_value(container, vf["resourceFieldRef"])
    return env


def _resource_value(container: Json, ref: Json) -> str:
    """`resourceFieldRef`: the declared value, or a node-sized default when none is set."""
    section, _, resource = str(ref.get("resource", "")).partition(".")
    declared = ((container.get("resources") or {}).get(section) or {}).get(resource)
    if declared is not None:
        return str(declared)
    return "2" if resource == "cpu" else str(8 * 1024**3)


def expand_command(container: Json, env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with `$(VAR)` expanded; the node needs a command (no images)."""
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if not command:
        raise ContainerConfigError(
            f"container {container.get('name')!r} has no command: the process node ignores "
            "images, so every container must set `command`"
        )
    return command + args

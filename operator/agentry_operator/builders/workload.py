"""The StatefulSet that runs the agent pods, its two Services and PodDisruptionBudget.

Pod layout, command, ports and probes follow docs/architecture.md ("Agent pod layout");
the pod security is the Kubernetes "restricted" profile. Resources come from
`resources.py`, placement (spreading, node selection) from `scheduling.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentry_operator import constants as c
from agentry_operator.builders.common import metadata
from agentry_operator.builders.profiles import profile_for
from agentry_operator.builders.resources import resources
from agentry_operator.builders.scheduling import placement
from agentry_operator.models import Agent, SecretKeyRef
from agentry_operator.settings import OperatorSettings

# The libpq URI reaches the runtime only from the connection Secret, mounted as a file (a
# ConfigMap is readable by more people, and the hash annotation must not depend on a
# password).


def key_secret_name_for(agent: Agent) -> str:
    """The key Secret the pods mount: the referenced one, or the generated `<agent>-keys`."""
    encryption = agent.spec.state.encryption
    if encryption is not None and encryption.key_secret_ref is not None:
        return encryption.key_secret_ref.name
    return c.keys_secret_name(agent.name)


def _probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _readiness_path(agent: Agent) -> str:
    """``/readyz``, without the state check when the state is a shared database.

    Every replica loses a shared database at once: failing readiness for it would empty
    the Service, and clients would get the proxy's bare 503 instead of the runtime's 503
    with Retry-After. The failure still shows in ``/readyz?verbose``, the heartbeat, the
    Agent's status and the ready metric.
    """
    if agent.spec.state.backend == "postgres":
        return "/readyz?exclude=state"
    return "/readyz"


def _profile_volume(agent: Agent) -> dict[str, Any]:
    """The profile ConfigMap, plus the instructions' ConfigMap key when they come from one."""
    sources: list[dict[str, Any]] = [{"configMap": {"name": c.profile_config_map_name(agent.name)}}]
    source = agent.spec.instructions_from
    if source is not None:
        ref = source.config_map_key_ref
        sources.append(
            {"configMap": {"name": ref.name, "items": [{"key": ref.key, "path": "instructions"}]}}
        )
    return {"name": "profile", "projected": {"sources": sources, "defaultMode": 0o444}}


def _volumes(agent: Agent) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) of the agent container."""
    spec = agent.spec
    volumes: list[dict[str, Any]] = [
        {
            "name": "keys",
            "secret": {"secretName": key_secret_name_for(agent), "defaultMode": 0o440},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        _profile_volume(agent),
        {
            "name": "limits",
            "configMap": {"name": c.limits_config_map_name(agent.name), "defaultMode": 0o444},
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "keys", "mountPath": c.KEYS_DIR, "readOnly": True},
        {"name": "limits", "mountPath": c.LIMITS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": c.TMP_DIR},
        # Not a subPath mount: the kubelet updates a whole volume in place, so edited
        # instructions reach the running pod.
        {"name": "profile", "mountPath": c.PROFILE_DIR, "readOnly": True},
        {"name": "state", "mountPath": c.STATE_DIR},
    ]
    if spec.state.backend != "pvc":
        # configmap and postgres keep their state elsewhere and write nothing here; the
        # directory exists because every backend gets the same mount path.
        volumes.append({"name": "state", "emptyDir": {"sizeLimit": "16Mi"}})
    ref = spec.model.api_key_secret_ref
    if ref is not None:
        _secret_key_file("model-key", ref, "api-key", c.MODEL_KEY_DIR, volumes, mounts)
    tokens = spec.auth.token_secret_ref
    if spec.auth.enabled and tokens is not None:
        _secret_key_file("auth", tokens, "tokens", c.AUTH_DIR, volumes, mounts)
    postgres = spec.state.postgres
    if spec.state.backend == "postgres" and postgres is not None:
        # A file, not an env var: the kubelet rewrites it when the Secret changes, and the
        # runtime reads it again, so a rotated database password needs no pod roll.
        ref = postgres.connection_secret_ref
        _secret_key_file("postgres", ref, "url", c.POSTGRES_DIR, volumes, mounts)
    _tool_header_volume(agent, volumes, mounts)
    return volumes, mounts


def _secret_key_file(
    name: str,
    ref: SecretKeyRef,
    path: str,
    directory: str,
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> None:
    """One key of a Secret as the file `directory/path`, read-only. A whole-volume mount
    (not a subPath), so the kubelet's rewrite of a changed Secret reaches the pod."""
    volumes.append(
        {
            "name": name,
            "secret": {
                "secretName": ref.name,
                "items": [{"key": ref.key, "path": path}],
                "defaultMode": 0o440,
            },
        }
    )
    mounts.append({"name": name, "mountPath": directory, "readOnly": True})


def _tool_header_volume(
    agent: Agent, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]
) -> None:
    """One projected volume with each tool server's header Secret key as a file named
    after the server: the kubelet reads the Secrets, so the operator needs no access to
    them, and a rotated Secret reaches the pod without a restart."""
    sources = [
        {
            "secret": {
                "name": tool.headers_from.secret_ref.name,
                "items": [{"key": tool.headers_from.secret_ref.key, "path": tool.name}],
            }
        }
        for tool in agent.spec.tools
        if tool.headers_from is not None
    ]
    if not sources:
        return
    volumes.append(
        {"name": "tool-headers", "projected": {"sources": sources, "defaultMode": 0o440}}
    )
    mounts.append({"name": "tool-headers", "mountPath": c.TOOL_HEADERS_DIR, "readOnly": True})


def _container(agent: Agent, settings: OperatorSettings) -> dict[str, Any]:
    spec = agent.spec
    profile = profile_for(spec.environment)
    _, mounts = _volumes(agent)
    env: list[dict[str, Any]] = [
        {"name": "AGENTRY_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    env.extend({"name": name, "value": value} for name, value in sorted(settings.agent_env.items()))
    env.extend({"name": var.name, "value": var.value} for var in spec.env)
    container: dict[str, Any] = {
        "name": c.CONTAINER_NAME,
        "image": spec.image or settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(c.RUNTIME_COMMAND),
        "ports": [{"name": "http", "containerPort": c.HTTP_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": c.config_map_name(agent.name)}}],
        "env": env,
        "startupProbe": _probe(
            "/livez", 2, profile.probe_timeout_seconds, profile.startup_failure_threshold
        ),
        "livenessProbe": _probe(
            "/livez",
            profile.probe_period_seconds,
            profile.probe_timeout_seconds,
            profile.probe_failure_threshold,
        ),
        "readinessProbe": _probe(
            _readiness_path(agent),
            profile.probe_period_seconds,
            profile.probe_timeout_seconds,
            profile.probe_failure_threshold,
        ),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": c.RUNTIME_UID,
            "runAsGroup": c.RUNTIME_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    container["resources"] = resources(agent)
    return container


def build_statefulset(
    agent: Agent,
    settings: OperatorSettings,
    config_hash: str = "",
    key_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The StatefulSet `<agent>`; replicas 0 while suspended.

    `key_annotations` record on the pod template which key ids the pods were given, so a
    later reconcile knows what their state needs even when the key Secret is gone.
    """
    spec = agent.spec
    volumes, _ = _volumes(agent)
    pod_annotations = {c.CONFIG_HASH_ANNOTATION: config_hash} if config_hash else {}
    pod_annotations.update(key_annotations or {})
    sts_spec: dict[str, Any] = {
        "replicas": 0 if spec.suspend else spec.replicas,
        "serviceName": c.pods_service_name(agent.name),
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": c.selector_labels(agent.name)},
        "updateStrategy": {"type": "RollingUpdate"},
        "persistentVolumeClaimRetentionPolicy": {
            "whenDeleted": "Retain" if spec.state.retain_on_delete else "Delete",
            "whenScaled": "Retain",
        },
        "template": {
            "metadata": {"labels": c.labels(agent.name), "annotations": pod_annotations},
            "spec": {
                "serviceAccountName": agent.name,
                "automountServiceAccountToken": True,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": profile_for(
                    spec.environment
                ).termination_grace_period_seconds,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": c.RUNTIME_UID,
                    "runAsGroup": c.RUNTIME_UID,
                    "fsGroup": c.RUNTIME_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [_container(agent, settings)],
                "volumes": volumes,
                **placement(agent),
            },
        },
    }
    if spec.state.backend == "pvc":
        pvc = spec.state.pvc
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": pvc.size if pvc else "1Gi"}},
        }
        if pvc is not None and pvc.storage_class_name:
            claim_spec["storageClassName"] = pvc.storage_class_name
        sts_spec["volumeClaimTemplates"] = [
            {"metadata": {"name": "state", "labels": c.labels(agent.name)}, "spec": claim_spec}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(agent, agent.name),
        "spec": sts_spec,
    }


def build_pods_service(agent: Agent) -> dict[str, Any]:
    """The headless governing Service `<agent>-pods` of the StatefulSet: it gives each
    ready pod a stable DNS name, `<agent>-<ordinal>.<agent>-pods.<namespace>.svc`, for
    traffic to one replica (peers, debugging); clients use the ClusterIP Service."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(agent, c.pods_service_name(agent.name)),
        "spec": {
            "clusterIP": "None",
            "selector": c.selector_labels(agent.name),
            "ports": [
                {"name": "http", "port": c.HTTP_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def build_service(agent: Agent) -> dict[str, Any]:
    """Service `<agent>`: port 80 → the pods' http port, load-balanced (clients use it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(agent, agent.name),
        "spec": {
            "type": "ClusterIP",
            "selector": c.selector_labels(agent.name),
            "ports": [
                {"name": "http", "port": c.SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def build_pdb(agent: Agent) -> dict[str, Any] | None:
    """A PodDisruptionBudget when more than one replica runs; None otherwise."""
    if agent.spec.suspend or agent.spec.replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(agent, agent.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": c.selector_labels(agent.name)}},
    }

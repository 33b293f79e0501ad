"""Names shared by every part of the operator: API group, labels, finalizer, annotations.

Kept in one place so the CRD, the builders, the handlers and the chart agree on spelling;
the values follow docs/architecture.md.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "agentry.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "Agent"
PLURAL: Final = "agents"
SINGULAR: Final = "agent"
SHORT_NAMES: Final = ("agt",)
CATEGORIES: Final = ("agentry",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

ANNOTATION_PREFIX: Final = GROUP
FINALIZER: Final = f"{GROUP}/finalizer"
CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
HEARTBEAT_ANNOTATION: Final = f"{GROUP}/heartbeat"
RETAINED_LABEL: Final = f"{GROUP}/retained"
AGENT_LABEL: Final = f"{GROUP}/agent"
# Key ids the pods were given (pod template), and the one-shot consent to a fresh start.
ACTIVE_KEY_ANNOTATION: Final = f"{GROUP}/active-key-id"
KEY_IDS_ANNOTATION: Final = f"{GROUP}/key-ids"
ACCEPT_NEW_KEYS_ANNOTATION: Final = f"{GROUP}/accept-new-keys"
# State that a fresh start moved aside: never read, never deleted by the operator.
SET_ASIDE_LABEL: Final = f"{GROUP}/set-aside"
NEEDS_KEYS_ANNOTATION: Final = f"{GROUP}/needs-key-ids"

MANAGED_BY: Final = "agentry-operator"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
MEMORY_COMPONENT: Final = "memory"  # the runtime's state ConfigMaps (configmap_layout.py)
APP_NAME: Final = "agentry-agent"
PART_OF: Final = "agentry"

CONTAINER_NAME: Final = "agent"
RUNTIME_COMMAND: Final = ("agentry-runtime", "serve")
HTTP_PORT: Final = 8080
SERVICE_PORT: Final = 80
RUNTIME_UID: Final = 10001

KEYS_DIR: Final = "/etc/agentry/keys"
MODEL_KEY_DIR: Final = "/etc/agentry/model"
MODEL_KEY_FILE: Final = f"{MODEL_KEY_DIR}/api-key"
AUTH_DIR: Final = "/etc/agentry/auth"
AUTH_TOKENS_FILE: Final = f"{AUTH_DIR}/tokens"
PROFILE_DIR: Final = "/etc/agentry/profile"
LIMITS_DIR: Final = "/etc/agentry/limits"
LIMITS_KEY: Final = "limits.json"
LIMITS_FILE: Final = f"{LIMITS_DIR}/{LIMITS_KEY}"
# One file per tool server with headersFrom, named after the server.
TOOL_HEADERS_DIR: Final = "/etc/agentry/tool-headers"
POSTGRES_DIR: Final = "/etc/agentry/postgres"
POSTGRES_URL_FILE: Final = f"{POSTGRES_DIR}/url"
STATE_DIR: Final = "/var/lib/agentry/state"
TMP_DIR: Final = "/tmp"  # noqa: S108 - the mount path of the pod's emptyDir, not a temp file

STATE_CHUNK_SLOTS: Final = ("a", "b")
STATE_CHUNKS_PER_SLOT: Final = 8


def labels(agent: str) -> dict[str, str]:
    """The labels every child of an Agent carries (docs/architecture.md, "Labels")."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": agent,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
        AGENT_LABEL: agent,
    }


def selector_labels(agent: str) -> dict[str, str]:
    """The immutable subset used as the StatefulSet, Service and PDB selector."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": agent}


def config_map_name(agent: str) -> str:
    return f"{agent}-config"


def profile_config_map_name(agent: str) -> str:
    return f"{agent}-profile"


def limits_config_map_name(agent: str) -> str:
    return f"{agent}-limits"


def pods_service_name(agent: str) -> str:
    """The StatefulSet's headless governing Service (per-pod DNS names)."""
    return f"{agent}-pods"


def keys_secret_name(agent: str) -> str:
    return f"{agent}-keys"


def pod_name(agent: str, ordinal: int) -> str:
    return f"{agent}-{ordinal}"


def heartbeat_lease_name(pod: str) -> str:
    return f"{pod}-heartbeat"


def state_config_map_names(pod: str) -> list[str]:
    """The commit point and every chunk name the configmap backend may write for a pod."""
    names = [f"{pod}-state"]
    for slot in STATE_CHUNK_SLOTS:
        names.extend(f"{pod}-state-{slot}{i}" for i in range(STATE_CHUNKS_PER_SLOT))
    return names

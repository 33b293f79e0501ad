"""Many Agents at once, as the cluster-level chaos scenarios need them (applied in one
call by tests/support/agents.py): their key material and children read in one listing
each, and the checks that matter after a fault (all Ready, no duplicate or leaked child,
no regenerated key)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from tests.support.e2e import container_pid, get_json, is_ready, wait_for

AGENTS = "agents.agentry.dev"
AGENT_LABEL = "agentry.dev/agent"
RETAINED_LABEL = "agentry.dev/retained"
OPERATOR_NS = "agentry-system"
OPERATOR_SELECTOR = "app.kubernetes.io/name=agentry-operator"
CHILD_KINDS = (
    "configmaps",
    "secrets",
    "serviceaccounts",
    "roles",
    "rolebindings",
    "statefulsets",
    "services",
    "poddisruptionbudgets",
    "persistentvolumeclaims",
)


def agents(cluster: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """The Agents of `namespace` by name (empty while the API server does not answer)."""
    listing = get_json(cluster, AGENTS, "-n", namespace) or {}
    return {a["metadata"]["name"]: a for a in listing.get("items") or []}


def is_converged(agent: dict[str, Any], want_ready: bool = True) -> bool:
    """Status of the current generation, and Ready when the Agent should be."""
    status = agent.get("status") or {}
    if status.get("observedGeneration") != agent["metadata"]["generation"]:
        return False
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    return not want_ready or (ready is not None and ready["status"] == "True")


def key_digests(cluster: Any, namespace: str) -> dict[str, str]:
    """SHA-256 of each Agent's generated key Secret data (`<agent>-keys`), by Agent."""
    # Retained ones too: a deleted Agent's key Secret must keep its bytes as well.
    listing = get_json(cluster, "secrets", "-n", namespace, "-l", AGENT_LABEL) or {}
    digests = {}
    for secret in listing.get("items") or []:
        name = secret["metadata"]["name"]
        if name.endswith("-keys"):
            data = json.dumps(secret.get("data") or {}, sort_keys=True).encode()
            digests[name.removesuffix("-keys")] = hashlib.sha256(data).hexdigest()
    return digests


def children(
    cluster: Any, namespace: str, *, retained: bool = False
) -> dict[str, dict[str, list[str]]]:
    """Per Agent label value: its children's names by kind, each name with the Agent's
    own name replaced by `*`, so that every Agent of one spec has the same shape. With
    `retained`, instead, what deleted Agents left on purpose (state.retainOnDelete: the
    key Secret and the state, without an owner)."""
    selector = f"{AGENT_LABEL},{RETAINED_LABEL}{'=' if retained else '!='}true"
    listing = get_json(cluster, ",".join(CHILD_KINDS), "-n", namespace, "-l", selector)
    found: dict[str, dict[str, list[str]]] = {}
    for item in (listing or {}).get("items") or []:
        owner = item["metadata"]["labels"][AGENT_LABEL]
        shape = re.sub(rf"^{re.escape(owner)}", "*", item["metadata"]["name"])
        shape = shape.replace(f"-{owner}-", "-*-")
        found.setdefault(owner, {}).setdefault(item["kind"], []).append(shape)
    return {
        owner: {kind: sorted(names) for kind, names in sorted(kinds.items())}
        for owner, kinds in found.items()
    }


def one_shape(shapes: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """The children every Agent has; fails naming an Agent whose children differ (a
    duplicate, or one missing)."""
    reference = next(iter(shapes.values()))
    for owner, shape in shapes.items():
        assert shape == reference, f"{owner}: {shape} != {reference}"
    return reference


def wait_all(
    cluster: Any, namespace: str, names: set[str], timeout: float, want_ready: bool = True
) -> float:
    """Seconds until every Agent in `names` is converged (see `is_converged`)."""
    started = time.monotonic()

    def done() -> bool:
        found = agents(cluster, namespace)
        return all(n in found and is_converged(found[n], want_ready) for n in names)

    wait_for(done, timeout, f"{len(names)} Agents converged", interval=1.0)
    return time.monotonic() - started


def operator_pod(cluster: Any) -> dict[str, Any] | None:
    """The operator's pod once its process runs, else None."""
    listing = get_json(cluster, "pods", "-n", OPERATOR_NS, "-l", OPERATOR_SELECTOR) or {}
    for pod in listing.get("items") or []:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if statuses and "running" in (statuses[0].get("state") or {}):
            return dict(pod)
    return None


def operator_ready(cluster: Any) -> bool:
    pod = operator_pod(cluster)
    return pod is not None and is_ready(pod)


def operator_pid(pod: dict[str, Any]) -> int:
    return container_pid(pod, b"agentry-operator")

"""Changes to the StatefulSet that a merge patch alone would not make.

- One made before the headless `<agent>-pods` Service existed names the client Service in
  its immutable serviceName: the operator re-creates it with its pods orphaned (they keep
  serving and are adopted), and it then names `<agent>-pods`; a same-named StatefulSet
  that is not the Agent's is left alone (NameConflict).
- A placement field removed from spec.scheduling is removed from the pod template.
"""

from __future__ import annotations

from typing import Any

AGENTS = "agentry.dev/v1alpha1/agents"
STS = "apps/v1/statefulsets"
OWNER = {
    "apiVersion": "agentry.dev/v1alpha1",
    "kind": "Agent",
    "name": "web",
    "uid": "uid-web",
    "controller": True,
    "blockOwnerDeletion": True,
}


def old_statefulset() -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": "agentry-agent", "app.kubernetes.io/instance": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "labels": {"agentry.dev/agent": "web"},
            "ownerReferences": [OWNER],
        },
        "spec": {
            "replicas": 1,
            "serviceName": "web",
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": {"containers": []}},
        },
    }


def web_agent(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 1},
        "spec": {"state": {"backend": "configmap"}, **spec},
    }


async def test_an_old_statefulset_is_recreated_with_the_headless_service_name(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(STS, old_statefulset())
    await api.create(AGENTS, web_agent())
    assert await eventually(
        lambda: (api.get(STS, "ns", "web") or {}).get("spec", {}).get("serviceName") == "web-pods"
    ), api.get(STS, "ns", "web")
    sts = api.get(STS, "ns", "web")
    assert sts["spec"]["template"]["spec"]["containers"][0]["name"] == "agent"
    assert api.get("v1/services", "ns", "web-pods")["spec"]["clusterIP"] == "None"


async def test_a_statefulset_of_someone_else_is_not_deleted(
    api: Any, operator: None, eventually: Any
) -> None:
    foreign = old_statefulset()
    foreign["metadata"]["ownerReferences"] = []
    await api.create(STS, foreign)
    await api.create(AGENTS, web_agent())

    def reason() -> str:
        status = api.get(AGENTS, "ns", "web").get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        return str(ready[0]["reason"]) if ready else ""

    assert await eventually(lambda: reason() == "NameConflict")
    assert api.get(STS, "ns", "web")["spec"]["serviceName"] == "web"


async def test_a_node_selector_removed_from_the_spec_leaves_the_pod_template(
    api: Any, operator: None, eventually: Any
) -> None:
    await api.create(AGENTS, web_agent(scheduling={"nodeSelector": {"pool": "agents"}}))

    def node_selector() -> Any:
        sts = api.get(STS, "ns", "web") or {}
        return ((sts.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector")

    assert await eventually(lambda: node_selector() == {"pool": "agents"})
    patch = {"metadata": {"generation": 2}, "spec": {"scheduling": {"nodeSelector": None}}}
    await api.patch(AGENTS, "ns", "web", patch)
    assert await eventually(lambda: api.get(STS, "ns", "web") and node_selector() is None)

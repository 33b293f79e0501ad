"""What a new Agent costs in API requests, against kmock (issue 13).

The reconcile rate of a burst of new Agents is bound by the API server's latency and by
the client's rate limit, both paid per request: a request added to the create path costs
every new Agent. These tests pin the requests the operator's own client sends for one
new Agent (kopf's patches of the Agent and its Event are not through that client), by
verb and kind, so that a change that adds one fails here rather than on a cluster.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agentry_operator.kube import RESOURCES, Kube
from agentry_operator.models import Agent
from agentry_operator.reconcile import Reconciler
from agentry_operator.seen import Seen
from agentry_operator.settings import OperatorSettings

from tests.operator.test_lifecycle import AGENTS, agent
from tests.support.agents import connection_secret, shared_state

KINDS = {plural: kind for kind, (_, plural) in RESOURCES.items()}

# One new Agent (suspended, default spec): every child created without being read first
# (ServiceAccount, Role, RoleBinding, key Secret, three ConfigMaps, two Services,
# NetworkPolicy, StatefulSet); its state listed once, for the retained state of a deleted
# namesake and for the sealed state a first key must not lock out; the client Service
# read once, because a foreign one must stop the Agent before its StatefulSet exists.
NEW_AGENT = {
    ("LIST", "ConfigMap"): 1,
    ("LIST", "PersistentVolumeClaim"): 1,
    ("GET", "Service"): 1,
    ("POST", "ServiceAccount"): 1,
    ("POST", "Role"): 1,
    ("POST", "RoleBinding"): 1,
    ("POST", "Secret"): 1,
    ("POST", "ConfigMap"): 3,
    ("POST", "Service"): 2,
    ("POST", "NetworkPolicy"): 1,
    ("POST", "StatefulSet"): 1,
}


def verb_and_kind(method: str, path: str) -> tuple[str, str]:
    """("LIST", "ConfigMap") for GET …/namespaces/ns/configmaps, and so on."""
    parts = path.split("/")
    after = parts[parts.index("namespaces") + 2 :]
    listed = method == "GET" and len(after) == 1
    return ("LIST" if listed else method, KINDS[after[0]])


async def created(body: dict[str, Any], settings: OperatorSettings) -> Counter[tuple[str, str]]:
    """The requests of the create handler's domain steps for `body` (converge with the
    adoption of retained state, then the status), by (verb, kind), as the operator's
    client sends them."""
    kube = await Kube.connect(settings.kubeconfig)
    calls: Counter[tuple[str, str]] = Counter()
    send = kube._send

    async def counted(method: str, path: str, *args: Any) -> dict[str, Any]:
        calls[verb_and_kind(method, path)] += 1
        return await send(method, path, *args)

    kube._send = counted  # type: ignore[method-assign]
    try:
        rec = Reconciler(kube=kube, settings=settings, observed=Seen())
        new = Agent.from_body(body)
        sts = await rec.converge(new, new=True, status={}, adopt=True)
        await rec.observe(new, {}, rec.alert_state(new, {}), statefulset=sts)
    finally:
        await kube.close()
    return calls


async def test_a_new_agent_costs_fourteen_requests(
    api: Any, operator_settings: OperatorSettings
) -> None:
    body = agent(suspend=True)
    await api.create(AGENTS, body)
    assert dict(await created(body, operator_settings)) == NEW_AGENT


async def test_a_shared_agent_also_reads_its_connection_secret_and_gets_a_pdb(
    api: Any, operator_settings: OperatorSettings
) -> None:
    await api.create("v1/secrets", connection_secret("ns", "postgresql://db/agents"))
    body = agent(replicas=2, state=shared_state())
    await api.create(AGENTS, body)
    expected = Counter(NEW_AGENT)
    expected[("GET", "Secret")] += 1
    expected[("POST", "PodDisruptionBudget")] += 1
    assert await created(body, operator_settings) == expected

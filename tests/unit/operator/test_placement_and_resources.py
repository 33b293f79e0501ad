"""What the StatefulSet asks of the scheduler: its headless governing Service, resource
defaults per environment with the user's spec.resources taking over field by field, the
spread of replicas over nodes, and spec.scheduling passed through to the pods."""

from __future__ import annotations

from typing import Any

import pytest
from agentry_operator import builders
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings
from kubernetes.utils.quantity import parse_quantity
from pydantic import ValidationError

SETTINGS = OperatorSettings(runtime_image="img:1")
SELECTOR = {"app.kubernetes.io/name": "agentry-agent", "app.kubernetes.io/instance": "bot"}
MIB = 1024 * 1024
SHARED = {"backend": "postgres", "postgres": {"connectionSecretRef": {"name": "db", "key": "uri"}}}


def agent(**spec: Any) -> Agent:
    return Agent.from_body(
        {"metadata": {"name": "bot", "namespace": "ns", "uid": "u1"}, "spec": spec}
    )


def pod_spec(a: Agent) -> dict[str, Any]:
    spec: dict[str, Any] = builders.build_statefulset(a, SETTINGS)["spec"]["template"]["spec"]
    return spec


def resources(a: Agent) -> dict[str, dict[str, Any]]:
    res: dict[str, dict[str, Any]] = pod_spec(a)["containers"][0]["resources"]
    return res


# ---- the governing Service ------------------------------------------------------------


def test_the_statefulset_is_governed_by_a_headless_service_beside_the_client_service() -> None:
    a = agent(replicas=3, state=SHARED)
    sts = builders.build_statefulset(a, SETTINGS)
    headless = builders.build_pods_service(a)
    client = builders.build_service(a)
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"] == "bot-pods"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == client["spec"]["selector"] == SELECTOR
    assert headless["spec"]["ports"][0]["targetPort"] == "http"
    assert client["metadata"]["name"] == "bot"
    assert "clusterIP" not in client["spec"]  # the client Service keeps a virtual IP


# ---- resources -------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["development", "staging", "production"])
def test_every_environment_requests_cpu_memory_and_ephemeral_storage(environment: str) -> None:
    res = resources(agent(environment=environment))
    assert set(res["requests"]) == {"cpu", "memory", "ephemeral-storage"}
    assert "ephemeral-storage" in res["limits"]
    assert "cpu" not in res["limits"], "no CPU limit by default (docs/operator.md)"
    for name, limit in res["limits"].items():
        assert parse_quantity(res["requests"][name]) <= parse_quantity(limit)


def test_memory_is_limited_in_staging_and_production_but_not_in_development() -> None:
    assert "memory" not in resources(agent(environment="development"))["limits"]
    assert "memory" in resources(agent(environment="staging"))["limits"]
    assert "memory" in resources(agent(environment="production"))["limits"]


def test_production_reserves_more_than_development() -> None:
    dev = resources(agent(environment="development"))["requests"]
    prod = resources(agent(environment="production"))["requests"]
    for name in ("cpu", "memory"):
        assert parse_quantity(prod[name]) > parse_quantity(dev[name])


def test_the_memory_limit_leaves_room_to_checkpoint_the_largest_state_the_runtime_keeps() -> None:
    small = agent(environment="production", sessions={"maxStateBytes": 16 * MIB})
    large = agent(environment="production", sessions={"maxStateBytes": 512 * MIB})
    assert resources(small)["limits"]["memory"] == "336Mi"  # 256Mi request + 5 x 16 MiB
    assert resources(large)["limits"]["memory"] == "2816Mi"
    unbounded = agent(environment="production", sessions={"maxStateBytes": 0})
    default = agent(environment="production")
    assert resources(unbounded)["limits"]["memory"] == resources(default)["limits"]["memory"]


def test_a_users_resources_override_the_defaults_field_by_field() -> None:
    a = agent(
        environment="production",
        resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi", "cpu": "2"}},
    )
    res = resources(a)
    assert res["requests"] == {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "64Mi"}
    assert res["limits"] == {"ephemeral-storage": "128Mi", "memory": "1Gi", "cpu": "2"}


def test_a_default_bends_rather_than_make_a_request_above_its_limit() -> None:
    low_limit = resources(agent(environment="production", resources={"limits": {"memory": "64Mi"}}))
    assert low_limit["requests"]["memory"] == "64Mi"  # as Kubernetes does with a limit alone
    high_request = resources(
        agent(environment="staging", resources={"requests": {"memory": "4Gi"}})
    )
    assert high_request["limits"]["memory"] == "4Gi"


def test_a_quantity_that_is_not_one_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"resources\.requests\.cpu"):
        agent(resources={"requests": {"cpu": "lots"}})


# ---- spreading and placement -----------------------------------------------------------


def test_replicas_spread_over_nodes_without_ever_leaving_one_unschedulable_by_default() -> None:
    spec = pod_spec(agent(replicas=3, state=SHARED))
    assert spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
        }
    ]
    assert spec["nodeSelector"] is None
    assert spec["tolerations"] is None


def test_scheduling_can_require_node_spreading_and_add_zones() -> None:
    spec = pod_spec(
        agent(scheduling={"nodeSpread": "DoNotSchedule", "zoneSpread": "ScheduleAnyway"})
    )
    got = [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spec["topologySpreadConstraints"]]
    assert got == [
        ("kubernetes.io/hostname", "DoNotSchedule"),
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
    ]


def test_the_users_own_constraints_replace_the_defaults_and_count_this_agent() -> None:
    own = [
        {"topologyKey": "example.com/rack", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"},
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"tier": "a"}}},
    ]
    spec = pod_spec(agent(scheduling={"topologySpreadConstraints": own}))
    assert spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 2,
            "topologyKey": "example.com/rack",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": SELECTOR},
        },
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"tier": "a"}},
        },
    ]
    assert (
        pod_spec(agent(scheduling={"topologySpreadConstraints": []}))["topologySpreadConstraints"]
        is None
    )


def test_node_selector_tolerations_and_affinity_reach_the_pods_as_given() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}
                ]
            }
        }
    }
    spec = pod_spec(
        agent(
            scheduling={
                "nodeSelector": {"pool": "agents"},
                "tolerations": [
                    {
                        "key": "dedicated",
                        "operator": "Equal",
                        "value": "agents",
                        "effect": "NoSchedule",
                    }
                ],
                "affinity": affinity,
            }
        )
    )
    assert spec["nodeSelector"] == {"pool": "agents"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "agents", "effect": "NoSchedule"}
    ]
    assert spec["affinity"] == affinity


def test_affinity_other_than_node_and_pod_affinity_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"scheduling\.affinity"):
        agent(scheduling={"affinity": {"nodeAfinity": {}}})
    with pytest.raises(ValidationError, match=r"scheduling\.nodeSpread"):
        agent(scheduling={"nodeSpread": "Sometimes"})

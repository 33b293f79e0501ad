"""The NetworkPolicy builder (`spec.network`): who may call the agent port, and what the
agent pods may reach for each way a model endpoint can be named, with and without the API
server's addresses configured; a bad setting names itself. The whole object for whole
Agents is in the golden data (tests/operator/data/network-policy, no-network-policy)."""

from __future__ import annotations

from typing import Any

import pytest
from agentry_operator import builders
from agentry_operator.builders.network import DNS_PEER, endpoint_rule
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings
from pydantic import ValidationError

from tests.support.agents import shared_state

SETTINGS = OperatorSettings(runtime_image="img:1")
PINNED = OperatorSettings(runtime_image="img:1", api_server_cidrs=["172.18.0.2/32"])


def agent(**spec: Any) -> Agent:
    return Agent.from_body(
        {"metadata": {"name": "bot", "namespace": "ns", "uid": "u1", "generation": 1}, "spec": spec}
    )


def policy(a: Agent, settings: OperatorSettings = SETTINGS) -> dict[str, Any]:
    built = builders.build_network_policy(a, settings)
    assert built is not None
    spec: dict[str, Any] = built["spec"]
    return spec


def test_by_default_only_pods_of_the_namespace_reach_the_agent_port() -> None:
    spec = policy(agent())
    assert spec["podSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "agentry-agent",
            "app.kubernetes.io/instance": "bot",
        }
    }
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    ]


def test_a_builtin_agent_may_reach_only_dns_and_the_api_server() -> None:
    assert policy(agent())["egress"] == [
        {
            "to": [DNS_PEER],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]},
    ]


def test_known_api_server_addresses_narrow_egress_and_admit_its_proxy() -> None:
    spec = policy(agent(), PINNED)
    assert spec["egress"][1] == {
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
    }
    assert spec["ingress"][0]["from"] == [
        {"podSelector": {}},
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
    ]


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        # A name outside the cluster: NetworkPolicy has no host names, so its port only.
        ("https://api.openai.com/v1", {"ports": [{"protocol": "TCP", "port": 443}]}),
        ("http://llm.example.com:8000/v1", {"ports": [{"protocol": "TCP", "port": 8000}]}),
        (
            "http://10.1.2.3:8000/v1",
            {
                "to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}],
                "ports": [{"protocol": "TCP", "port": 8000}],
            },
        ),
        (
            "https://[fd00::5]/v1",
            {
                "to": [{"ipBlock": {"cidr": "fd00::5/128"}}],
                "ports": [{"protocol": "TCP", "port": 443}],
            },
        ),
        # A Service: its namespace, any port (the Service port is translated to the pod's).
        (
            "http://vllm.models.svc.cluster.local:8000/v1",
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "models"}
                        }
                    }
                ]
            },
        ),
        (
            "http://vllm.models.svc/v1",
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "models"}
                        }
                    }
                ]
            },
        ),
        (
            "http://vllm:8000/v1",
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns"}}}]},
        ),
    ],
)
def test_each_way_of_naming_an_endpoint_gets_the_narrowest_rule_policy_can_express(
    url: str, rule: dict[str, Any]
) -> None:
    assert endpoint_rule(url, "ns") == rule


def test_the_model_endpoint_postgres_and_spec_egress_are_added_in_order() -> None:
    extra = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 3128}]}
    a = agent(
        model={"provider": "openai", "endpoint": "http://10.1.2.3:8000/v1", "name": "m"},
        state=shared_state(),
        network={"egress": [extra]},
    )
    egress = policy(a)["egress"]
    assert egress[2] == endpoint_rule("http://10.1.2.3:8000/v1", "ns")
    assert egress[3] == {"ports": [{"protocol": "TCP", "port": 5432}]}
    assert egress[4] == extra
    assert len(egress) == 5


def test_an_endpoint_of_a_builtin_model_opens_nothing() -> None:
    a = agent(model={"provider": "builtin", "endpoint": "http://10.1.2.3:8000/v1"})
    assert len(policy(a)["egress"]) == 2


def test_chosen_callers_replace_the_namespace_default() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}
    spec = policy(agent(network={"ingressFrom": [peer]}))
    assert spec["ingress"][0]["from"] == [peer]


def test_no_callers_means_no_ingress_rule_not_an_empty_from_that_admits_everyone() -> None:
    spec = policy(agent(network={"ingressFrom": []}))
    assert spec["ingress"] is None  # null: the merge patch removes an earlier rule


def test_policy_false_builds_none() -> None:
    assert builders.build_network_policy(agent(network={"policy": False}), SETTINGS) is None


def test_a_bad_api_server_address_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTRY_OPERATOR_API_SERVER_CIDRS", "172.18.0.2/32, not-an-address")
    with pytest.raises(ValidationError, match="api_server_cidrs"):
        OperatorSettings()
    monkeypatch.setenv("AGENTRY_OPERATOR_API_SERVER_CIDRS", "172.18.0.2, fd00::/64")
    assert OperatorSettings().api_server_cidrs == ["172.18.0.2/32", "fd00::/64"]


def test_each_tool_server_is_reachable_and_a_shared_rule_appears_once() -> None:
    tools = [
        {"name": "search", "url": "http://search-mcp.tools.svc.cluster.local:8000/mcp"},
        {"name": "lookup", "url": "http://lookup.tools.svc:9000/mcp"},
        {"name": "web", "url": "https://mcp.example.com/mcp"},
    ]
    egress = policy(agent(tools=tools))["egress"]
    tools_namespace = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tools"}}}]
    }
    assert egress[2:] == [tools_namespace, {"ports": [{"protocol": "TCP", "port": 443}]}]

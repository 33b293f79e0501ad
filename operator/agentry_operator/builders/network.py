"""The NetworkPolicy that isolates an Agent's pods (`spec.network`).

Ingress: the agent port, from the peers of `spec.network.ingressFrom` (default: the pods of
the Agent's namespace) and from the API server's addresses when the operator knows them
(its proxy carries `kubectl agent invoke`). Egress: cluster DNS, the API server (heartbeat
Leases, the configmap backend), the model endpoint and the tool servers named in the spec,
the postgres port on that backend, and the rules of `spec.network.egress`.

NetworkPolicy selects by address, namespace and pod label, never by host name: an
endpoint outside the cluster named by a DNS name is allowed by its port to any address, a
Service of the cluster (`name`, `name.namespace.svc...`) by its namespace on every port (the
Service's port is translated to the pod's, which the operator cannot see), and an IP literal
by its address and port. docs/security.md ("Network policy") states these limits.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from agentry_operator import constants as c
from agentry_operator.builders.common import metadata
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
# CoreDNS and kube-dns both run as k8s-app=kube-dns in kube-system (kubeadm, kind, GKE,
# EKS, AKS); a cluster that answers DNS elsewhere (NodeLocal DNSCache) adds a rule.
DNS_PEER: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
POSTGRES_PORT = 5432
DEFAULT_PORTS = {"http": 80, "https": 443}


def _tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: name}}}


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def endpoint_rule(url: str, namespace: str) -> dict[str, Any]:
    """The egress rule that lets a pod in `namespace` reach `url` (see the module doc)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    address = _address(host)
    if address is not None:
        return {
            "to": [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}],
            "ports": [_tcp(port)],
        }
    labels = host.split(".")
    if len(labels) == 1:
        # A bare name resolves through the search path to a Service of this namespace.
        return {"to": [_namespace(namespace)]}
    if len(labels) >= 3 and labels[2] == "svc":
        return {"to": [_namespace(labels[1])]}
    return {"ports": [_tcp(port)]}


def egress_rules(agent: Agent, settings: OperatorSettings) -> list[dict[str, Any]]:
    """What the agent pods may reach, in a stable order (a reordering would be drift)."""
    api_ports = [_tcp(port) for port in settings.api_server_ports]
    api_server: dict[str, Any] = {"ports": api_ports}
    if settings.api_server_cidrs:
        api_server = {
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in settings.api_server_cidrs],
            "ports": api_ports,
        }
    rules: list[dict[str, Any]] = [
        {"to": [DNS_PEER], "ports": [{"protocol": "UDP", "port": 53}, _tcp(53)]},
        api_server,
    ]
    model = agent.spec.model
    urls = [model.endpoint] if model.provider != "builtin" and model.endpoint else []
    for url in [*urls, *(tool.url for tool in agent.spec.tools)]:
        rule = endpoint_rule(url, agent.namespace)
        if rule not in rules:
            rules.append(rule)
    if agent.spec.state.backend == "postgres":
        rules.append({"ports": [_tcp(POSTGRES_PORT)]})
    rules.extend(dict(rule) for rule in agent.spec.network.egress)
    return rules


def ingress_rules(agent: Agent, settings: OperatorSettings) -> list[dict[str, Any]] | None:
    """Who may call the agent port. Nobody selected: None, no rule at all (a rule with an
    empty `from` would admit everyone; null, not [], because the API server drops an
    empty list and the merge patch deletes a null)."""
    chosen = agent.spec.network.ingress_from
    peers = [{"podSelector": {}}] if chosen is None else [dict(peer) for peer in chosen]
    peers += [{"ipBlock": {"cidr": cidr}} for cidr in settings.api_server_cidrs]
    if not peers:
        return None
    return [{"from": peers, "ports": [_tcp(c.HTTP_PORT)]}]


def build_network_policy(agent: Agent, settings: OperatorSettings) -> dict[str, Any] | None:
    """The Agent's NetworkPolicy, or None when `spec.network.policy` is false."""
    if not agent.spec.network.policy:
        return None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(agent, agent.name),
        "spec": {
            "podSelector": {"matchLabels": c.selector_labels(agent.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress_rules(agent, settings),
            "egress": egress_rules(agent, settings),
        },
    }

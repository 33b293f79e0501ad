"""The cluster DNS: upstream CoreDNS as a Deployment and the `kube-dns` Service in
kube-system, as kubeadm and kind install it, run by the process node like any pod.

The objects follow kubeadm's addon: the `system:coredns` ClusterRole and binding, the
`coredns` ConfigMap with the Corefile, one replica (the node is one machine), `dnsPolicy:
Default`, and the Service at the tenth address of the service range. The Corefile serves
`cluster.local` (and reverse zones) with the kubernetes plugin and forwards nothing: there
is no network outside. The node ignores images, so the container's command is the CoreDNS
binary built with the others.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentry_cluster.apiclient import ApiClient

Json = dict[str, Any]
NAMESPACE = "kube-system"
VERSION = "v1.13.1"  # hack/build/coredns/go.mod, and the version kubeadm 1.35 installs
LABELS = {"k8s-app": "kube-dns"}

COREFILE = """\
.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    cache 30
    reload
    loadbalance
}}
"""


def dns_service_ip(service_cidr: str) -> str:
    """The tenth address of the service range (10.96.0.10 for 10.96.0.0/12), as kubeadm."""
    return str(ipaddress.ip_network(service_cidr)[10])


def objects(bin_dir: Path, dns_ip: str, domain: str) -> list[tuple[str, Json]]:
    """(collection path, object) for every object of the addon, in creation order."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    core = f"/api/v1/namespaces/{NAMESPACE}"
    return [
        (f"{core}/serviceaccounts", _meta("ServiceAccount", "v1", "coredns")),
        (f"{rbac}/clusterroles", _cluster_role()),
        (f"{rbac}/clusterrolebindings", _cluster_role_binding()),
        (f"{core}/configmaps", {**_meta("ConfigMap", "v1", "coredns"), "data": _corefile(domain)}),
        (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", _deployment(bin_dir)),
        (f"{core}/services", _service(dns_ip)),
    ]


def install(client: ApiClient, bin_dir: Path, dns_ip: str, domain: str) -> None:
    for path, body in objects(bin_dir, dns_ip, domain):
        client.create(path, body)


def answers(netns: str, dns_ip: str, domain: str) -> bool:
    """Whether the DNS Service, reached from the node namespace (through kube-proxy's
    rules), resolves the `kubernetes` Service."""
    name = f"kubernetes.default.svc.{domain}"
    query = [sys.executable, "-m", "agentry_cluster.dnsquery", name, dns_ip]
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *query],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 0


def _meta(kind: str, api_version: str, name: str, namespaced: bool = True) -> Json:
    metadata: Json = {"name": name}
    if namespaced:
        metadata["namespace"] = NAMESPACE
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def _cluster_role() -> Json:
    role = _meta("ClusterRole", "rbac.authorization.k8s.io/v1", "system:coredns", False)
    role["rules"] = [
        {
            "apiGroups": [""],
            "resources": ["endpoints", "services", "pods", "namespaces"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    return role


def _cluster_role_binding() -> Json:
    binding = _meta("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "system:coredns", False)
    binding["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:coredns",
    }
    binding["subjects"] = [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}]
    return binding


def _corefile(domain: str) -> dict[str, str]:
    return {"Corefile": COREFILE.format(domain=domain)}


def _deployment(bin_dir: Path) -> Json:
    container = {
        "name": "coredns",
        "image": f"registry.k8s.io/coredns/coredns:{VERSION}",
        "command": [str(bin_dir / "coredns"), "-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ],
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": 8080},
            "initialDelaySeconds": 60,
            "periodSeconds": 10,
            "failureThreshold": 5,
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
    }
    deployment = _meta("Deployment", "apps/v1", "coredns")
    deployment["metadata"]["labels"] = dict(LABELS)
    deployment["spec"] = {
        "replicas": 1,
        "selector": {"matchLabels": dict(LABELS)},
        "template": {
            "metadata": {"labels": dict(LABELS)},
            "spec": {
                "serviceAccountName": "coredns",
                "priorityClassName": "system-cluster-critical",
                "dnsPolicy": "Default",
                "containers": [container],
                "volumes": [
                    {
                        "name": "config-volume",
                        "configMap": {
                            "name": "coredns",
                            "items": [{"key": "Corefile", "path": "Corefile"}],
                        },
                    }
                ],
            },
        },
    }
    return deployment


def _service(dns_ip: str) -> Json:
    service = _meta("Service", "v1", "kube-dns")
    service["metadata"]["labels"] = {**LABELS, "kubernetes.io/name": "CoreDNS"}
    service["spec"] = {
        "selector": dict(LABELS),
        "clusterIP": dns_ip,
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        ],
    }
    return service

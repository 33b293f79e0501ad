"""A pod's resolv.conf and hosts file, computed the way the kubelet computes them.

`dnsPolicy` picks the base (pkg/kubelet/network/dns): `ClusterFirst` (the default) and
`ClusterFirstWithHostNet` use the cluster DNS Service with the search list
`<ns>.svc.<domain> svc.<domain> <domain>` followed by the node's own search domains and
`options ndots:5`; `Default` copies the node's resolv.conf; `None` starts empty. The pod's
`dnsConfig` is then merged in: nameservers and searches appended without duplicates,
options overriding by name. Pure: the node reads its resolv.conf once and passes it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

# The kubelet's limits (validation.MaxDNSNameservers, MaxDNSSearchPaths).
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
CLUSTER_OPTIONS = ("ndots:5",)


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class ClusterDns:
    """The node's DNS settings: the kubelet's --cluster-dns and --cluster-domain."""

    server: str
    domain: str
    host: ResolvConf


def parse_resolv_conf(text: str) -> ResolvConf:
    """Nameservers, the last `search`/`domain` line and the options of a resolv.conf."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key in ("search", "domain"):
            searches = [v.rstrip(".") for v in values]
        elif key == "options":
            options += values
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options))


def pod_resolv_conf(pod: Json, cluster: ClusterDns) -> ResolvConf:
    """The resolv.conf the kubelet would give `pod` (no hostNetwork on this node)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    if policy == "None":
        base = ResolvConf()
    elif policy == "Default" or not cluster.server:
        base = cluster.host
    else:
        domain = cluster.domain
        searches = (f"{namespace}.svc.{domain}", f"svc.{domain}", domain)
        base = ResolvConf(
            (cluster.server,), _unique(searches + cluster.host.searches), CLUSTER_OPTIONS
        )
    return _with_pod_config(base, spec.get("dnsConfig") or {})


def _with_pod_config(base: ResolvConf, config: Json) -> ResolvConf:
    nameservers = _unique(base.nameservers + tuple(config.get("nameservers") or ()))
    searches = _unique(base.searches + tuple(config.get("searches") or ()))
    options = _merge_options(base.options, config.get("options") or [])
    return ResolvConf(nameservers[:MAX_NAMESERVERS], searches[:MAX_SEARCHES], options)


def _merge_options(base: tuple[str, ...], pod_options: list[Json]) -> tuple[str, ...]:
    """Options by name, the pod's value replacing the base's, in first-seen order."""
    merged: dict[str, str | None] = {}
    for option in base:
        name, _, text = option.partition(":")
        merged[name] = text or None
    for pod_option in pod_options:
        value = pod_option.get("value")
        merged[pod_option["name"]] = None if value is None else str(value)
    return tuple(name if value is None else f"{name}:{value}" for name, value in merged.items())


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def hosts_file(pod: Json, pod_ip: str, domain: str) -> str:
    """/etc/hosts as the kubelet writes it: localhost, then the pod's IP with its name, and
    its fully qualified name first when `subdomain` is set (`<hostname>.<subdomain>...`)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    hostname = (spec.get("hostname") or meta.get("name", ""))[:63]
    names = [hostname]
    if subdomain := spec.get("subdomain"):
        names.insert(0, f"{hostname}.{subdomain}.{meta.get('namespace', 'default')}.svc.{domain}")
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{' '.join(names)}",
    ]
    lines += [
        f"{entry['ip']}\t{' '.join(entry.get('hostnames') or [])}"
        for entry in spec.get("hostAliases") or []
    ]
    return "".join(f"{line}\n" for line in lines)

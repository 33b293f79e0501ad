"""Service networking on the local cluster, as a pod sees it: names resolve through the
cluster DNS (CoreDNS), ClusterIP traffic reaches the endpoints (kube-proxy), rules follow
the EndpointSlices, a pod reaches its own Service, headless Services name each pod.

Every pod runs one small server: `/` answers with its pod name; `/resolve?name=` looks a
name up with the pod's own resolver (its resolv.conf, search list and ndots); `/get?url=`
fetches a URL from inside the pod; `/resolv.conf` shows the file. The test reaches each
pod on its IP from the host and has it do the lookups and requests from inside.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_cluster import binaries, clusterdns, controlplane, processes
from agentry_cluster.layout import StateLayout
from agentry_cluster.pytest_plugin import scratch_namespace

from tests.support.e2e import eventually as wait_for
from tests.support.e2e import get_url_json as get_json
from tests.support.e2e import is_ready

pytestmark = pytest.mark.cluster

SERVER = r"""
import json, os, socket, ssl, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SA = "/var/run/secrets/kubernetes.io/serviceaccount"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/resolve":
            try:
                infos = socket.getaddrinfo(query["name"], None, socket.AF_INET)
                body = {"addresses": sorted({i[4][0] for i in infos})}
            except socket.gaierror as err:
                body = {"error": str(err)}
        elif url.path == "/get":
            try:
                with urllib.request.urlopen(query["url"], timeout=5) as resp:
                    body = {"status": resp.status, "body": json.loads(resp.read())}
            except OSError as err:
                body = {"error": str(err)}
        elif url.path == "/version":
            # In-cluster configuration, as client libraries use it (and the token).
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ["KUBERNETES_SERVICE_PORT"]
            request = urllib.request.Request(
                f"https://{host}:{port}/version",
                headers={"Authorization": "Bearer " + open(f"{SA}/token").read()})
            ctx = ssl.create_default_context(cafile=f"{SA}/ca.crt")
            with urllib.request.urlopen(request, context=ctx, timeout=5) as resp:
                body = {"status": resp.status, "body": json.loads(resp.read())}
        elif url.path == "/resolv.conf":
            body = {"text": open("/etc/resolv.conf").read()}
        elif url.path == "/env":
            body = {k: os.environ.get(k) for k in
                    ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
        else:
            body = {"pod": os.environ["POD_NAME"]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


def pod_template(app: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "server", "image": "python:3.11",
                "command": ["python3", "/app/server.py"],
                "ports": [{"name": "http", "containerPort": 8000}],
                "env": [{"name": "POD_NAME",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                "volumeMounts": [{"name": "server", "mountPath": "/app"}],
            }],
            "volumes": [{"name": "server", "configMap": {"name": "server"}}],
        },
    }  # fmt: skip


def service(ns: str, app: str, *, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"app": app},
        "ports": [{"name": "http", "port": 80, "targetPort": 8000}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns},
            "spec": spec}  # fmt: skip


def manifests(ns: str) -> list[dict[str, Any]]:
    def workload(kind: str, app: str, replicas: int, **extra: Any) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": app, "namespace": ns},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                         "template": pod_template(app), **extra}}  # fmt: skip

    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "server", "namespace": ns},
         "data": {"server.py": SERVER}},
        # `client` asks the questions; it is behind a Service of its own (hairpin).
        workload("Deployment", "client", 1),
        service(ns, "client"),
        # `echo` answers: its endpoints change during the tests.
        workload("Deployment", "echo", 1),
        service(ns, "echo"),
        # `db`: a StatefulSet behind a headless Service, one DNS name per pod.
        workload("StatefulSet", "db", 2, serviceName="db", podManagementPolicy="Parallel"),
        service(ns, "db", headless=True),
    ]  # fmt: skip


def ready_pods(cluster: Any, ns: str, app: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"app={app}", "-o", "json").stdout
    pods = json.loads(out)["items"]
    return [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]


class Client:
    """The `client` pod, asked over its pod IP to look up and fetch from inside."""

    def __init__(self, ip: str) -> None:
        self.base = f"http://{ip}:8000"

    def resolve(self, name: str) -> Any:
        return get_json(f"{self.base}/resolve?name={urllib.parse.quote(name)}")

    def fetch(self, url: str) -> Any:
        return get_json(f"{self.base}/get?url={urllib.parse.quote(url, safe='')}")

    def pod_behind(self, url: str) -> str | None:
        answer = self.fetch(url)
        return answer.get("body", {}).get("pod") if answer.get("status") == 200 else None


@pytest.fixture(scope="module")
def apps(cluster: Any) -> Iterator[dict[str, Any]]:
    with scratch_namespace(cluster, "svc") as ns:
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests(ns)))
        for app, count in (("client", 1), ("echo", 1), ("db", 2)):
            wait_for(f"{count} Ready {app} pods",
                     lambda a=app, c=count: len(ready_pods(cluster, ns, a)) == c, timeout=90)  # type: ignore[misc]  # fmt: skip
        client_pod = ready_pods(cluster, ns, "client")[0]
        client = Client(client_pod["status"]["podIP"])
        # kube-proxy follows the EndpointSlice a moment after the pod turns Ready.
        wait_for("the echo Service answering", lambda: client.pod_behind("http://echo/"))
        yield {"ns": ns, "client": client, "client_name": client_pod["metadata"]["name"]}


def cluster_ip(cluster: Any, ns: str, name: str) -> str:
    return str(
        cluster.kubectl("get", "svc", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
    )


def test_a_pods_resolv_conf_is_the_kubelets_cluster_first_one(
    cluster: Any, apps: dict[str, Any]
) -> None:
    text = get_json(f"{apps['client'].base}/resolv.conf")["text"]
    domain = cluster.info["cluster_domain"]
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["search", f"{apps['ns']}.svc.{domain}", f"svc.{domain}", domain]
    assert f"nameserver {cluster.info['dns_ip']}" in lines
    assert "options ndots:5" in lines


def test_a_pod_resolves_the_kubernetes_service_and_reaches_the_api_server_through_it(
    cluster: Any, apps: dict[str, Any]
) -> None:
    client = apps["client"]
    assert client.resolve("kubernetes.default.svc.cluster.local") == {"addresses": ["10.96.0.1"]}
    assert client.resolve("kubernetes.default") == {"addresses": ["10.96.0.1"]}
    env = get_json(f"{client.base}/env")
    assert env == {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    # In-cluster configuration: the Service's address, TLS verified with the pod's CA.
    version = get_json(f"{client.base}/version")
    assert version["status"] == 200
    assert version["body"]["gitVersion"].startswith("v1.")


def test_a_pod_reaches_another_pods_service_by_short_and_full_name(
    cluster: Any, apps: dict[str, Any]
) -> None:
    ns, client = apps["ns"], apps["client"]
    ip = cluster_ip(cluster, ns, "echo")
    echo_pod = ready_pods(cluster, ns, "echo")[0]["metadata"]["name"]
    assert client.resolve(f"echo.{ns}.svc") == {"addresses": [ip]}
    assert client.resolve("echo") == {"addresses": [ip]}
    for url in ("http://echo/", f"http://echo.{ns}.svc.cluster.local/", f"http://{ip}/"):
        assert client.pod_behind(url) == echo_pod, url


def test_a_name_that_does_not_exist_fails_fast(apps: dict[str, Any]) -> None:
    started = time.monotonic()
    answer = apps["client"].resolve("no-such-service")
    assert "error" in answer
    assert time.monotonic() - started < 5


def test_a_pod_reaches_its_own_service(apps: dict[str, Any]) -> None:
    client = apps["client"]

    # The fixture waited for the echo Service's rules; kube-proxy writes those of the
    # client's own Service from its EndpointSlice, which can come a moment later.
    def answered() -> dict[str, Any] | None:
        answer: dict[str, Any] = client.fetch("http://client/")
        return answer if answer.get("status") == 200 else None

    behind = wait_for("the client's own Service answering", answered, timeout=15)
    assert behind["body"]["pod"] == apps["client_name"], behind


def test_a_headless_service_names_each_statefulset_pod(cluster: Any, apps: dict[str, Any]) -> None:
    ns, client = apps["ns"], apps["client"]
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in ready_pods(cluster, ns, "db")}
    assert sorted(ips) == ["db-0", "db-1"]
    for name, ip in ips.items():
        assert client.resolve(f"{name}.db") == {"addresses": [ip]}
        assert client.resolve(f"{name}.db.{ns}.svc.cluster.local") == {"addresses": [ip]}
        assert client.pod_behind(f"http://{name}.db:8000/") == name
    assert client.resolve("db") == {"addresses": sorted(ips.values())}


def test_the_rules_follow_the_endpoints_when_pods_come_and_go(
    cluster: Any, apps: dict[str, Any]
) -> None:
    ns, client = apps["ns"], apps["client"]
    first = ready_pods(cluster, ns, "echo")[0]["metadata"]["name"]
    cluster.kubectl("scale", "deployment", "echo", "-n", ns, "--replicas=2")
    wait_for("2 Ready echo pods", lambda: len(ready_pods(cluster, ns, "echo")) == 2, 60)
    seen: set[str | None] = set()
    wait_for("both echo pods answering", lambda: seen.add(client.pod_behind("http://echo/"))
             or len(seen - {None}) == 2, timeout=30)  # fmt: skip
    assert None not in seen

    cluster.kubectl("delete", "pod", first, "-n", ns, "--wait=false")
    # Once the pod has gone from the EndpointSlice, every answer comes from another pod.
    wait_for("the deleted pod out of the rules",
             lambda: all(client.pod_behind("http://echo/") not in (first, None)
                         for _ in range(10)), timeout=30)  # fmt: skip


POD_NETNS = re.compile(r"agbr\d+-")
"""A pod's network namespace is ``<bridge>-<digest>`` (node/network.py)."""


def host_network_state() -> dict[str, Any]:
    """What a cluster may add to the host: links, routes, namespaces and nftables rules.

    Pods' network namespaces are left out: the clusters that keep running meanwhile (this
    module's, or any other on the host) start and stop pods while the test runs, and that
    churn says nothing about what ``down`` left behind (the test checks the second
    cluster's pods apart)."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def kept(names: list[str]) -> list[str]:
        return sorted(name for name in names if not POD_NETNS.match(name))

    return {
        "links": kept(
            [str(link["ifname"]) for link in json.loads(run("ip", "-j", "link", "show"))]
        ),
        "routes": run("ip", "-4", "route", "show"),
        "netns": kept(
            [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line]
        ),
        "nftables": run("nft", "list", "ruleset"),
    }


def test_a_second_cluster_has_its_own_proxy_rules_and_dns_and_down_leaves_the_host_as_found(
    cluster: Any, tmp_path: Path
) -> None:
    first = cluster.info
    before = host_network_state()
    layout = StateLayout(tmp_path / "second")
    try:
        second = controlplane.up(layout, "second", binaries.ensure())
        assert second.node_netns != first["node_netns"]
        assert second.pod_cidr != first["pod_cidr"]
        # Each namespace holds its own kube-proxy table; the host's tables are untouched.
        for netns in (first["node_netns"], second.node_netns):
            table = subprocess.run(
                ["ip", "netns", "exec", netns, "nft", "list", "table", "ip", "kube-proxy"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            assert "10.96.0.10" in table, netns
        assert host_network_state()["nftables"] == before["nftables"]
        assert clusterdns.answers(second.node_netns, second.dns_ip, second.cluster_domain)
        assert clusterdns.answers(first["node_netns"], first["dns_ip"], first["cluster_domain"])
    finally:
        controlplane.down(layout)
    assert host_network_state() == before
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{second.bridge}-" not in netns, "a pod namespace of the second cluster remains"
    leftovers = [pid for pid in Path("/proc").glob("[0-9]*")
                 if str(layout.root) in " ".join(processes.cmdline(int(pid.name)))]  # fmt: skip
    assert leftovers == []
    assert clusterdns.answers(first["node_netns"], first["dns_ip"], first["cluster_domain"])

"""The process node on the real control plane: pods of a StatefulSet become Ready and
answer on their own IPs (directly, and through the API server's pod and service proxy);
they see their env and mounted credentials (a ServiceAccount token that RBAC checks);
Secret updates reach mounted files; `kubectl logs` (and `--previous`) shows the output;
a crashing container is restarted; deletion sends SIGTERM and honours the grace period.

One StatefulSet serves most checks (a module-scoped namespace); its server is a small
Python script mounted from a ConfigMap.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_cluster.pytest_plugin import scratch_namespace

from tests.support.e2e import eventually as wait_for
from tests.support.e2e import get_json as kubectl_json
from tests.support.e2e import get_url_json as get_json
from tests.support.e2e import is_ready

pytestmark = pytest.mark.cluster

SERVER = r"""
import json, os, signal, ssl, sys, time, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
NS = os.environ["POD_NAMESPACE"]


def api_status(path):
    token = open(f"{SA}/token").read()
    ctx = ssl.create_default_context(cafile=f"{SA}/ca.crt")
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    req = urllib.request.Request(f"https://{host}:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/rbac":
            body = {"configmaps": api_status(f"/api/v1/namespaces/{NS}/configmaps"),
                    "secrets": api_status(f"/api/v1/namespaces/{NS}/secrets"),
                    "namespace": open(f"{SA}/namespace").read()}
        elif self.path == "/env":
            body = {k: os.environ.get(k) for k in
                    ("POD_NAME", "POD_IP", "GREETING_ENV", "X_from_cm", "HOSTNAME")}
        elif self.path == "/greeting":
            body = {"greeting": open("/etc/greeting/greeting").read()}
        else:
            body = {"pod": os.environ["POD_NAME"]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)


def on_term(*_):
    print("SIGTERM received", flush=True)
    try:
        with open(f"/signals/{os.environ['POD_NAME']}", "w") as f:
            f.write(str(time.time()))
    except OSError as err:
        print(f"cannot record SIGTERM: {err}", flush=True)
    # Keep running: the node must wait the grace period, then SIGKILL.


signal.signal(signal.SIGTERM, on_term)
print(f"serving {os.environ['POD_NAME']} on {os.environ['POD_IP']}", flush=True)
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""

GRACE_SECONDS = 3


def meta(name: str, ns: str) -> dict[str, str]:
    return {"name": name, "namespace": ns}


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def manifests(ns: str, signals: Path) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "server", "namespace": ns},
         "data": {"server.py": SERVER, "from_cm": "configured"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "greeting", "namespace": ns},
         "stringData": {"greeting": "hello"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("web", ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "read-configmaps", "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "web", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "read-configmaps"},
         "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": labels,
                  "ports": [{"name": "http", "port": 80, "targetPort": 8000}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("web", ns),
         "spec": {
             "replicas": 2, "serviceName": "web", "selector": {"matchLabels": labels},
             "podManagementPolicy": "Parallel",
             "template": {"metadata": {"labels": labels}, "spec": {
                 "serviceAccountName": "web",
                 "terminationGracePeriodSeconds": GRACE_SECONDS,
                 "containers": [{
                     "name": "web", "image": "python:3.11",
                     "command": ["python3", "/app/server.py"],
                     "ports": [{"name": "http", "containerPort": 8000}],
                     "env": [
                         field_env("POD_NAME", "metadata.name"),
                         field_env("POD_NAMESPACE", "metadata.namespace"),
                         field_env("POD_IP", "status.podIP"),
                         {"name": "GREETING_ENV",
                          "valueFrom": {"secretKeyRef": {"name": "greeting", "key": "greeting"}}},
                     ],
                     "envFrom": [{"configMapRef": {"name": "server"}, "prefix": "X_"}],
                     "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                        "periodSeconds": 1},
                     "volumeMounts": [
                         {"name": "server", "mountPath": "/app"},
                         {"name": "greeting", "mountPath": "/etc/greeting"},
                         {"name": "signals", "mountPath": "/signals"},
                         # Covers the node's state dir when it lives under /tmp (pytest's).
                         {"name": "tmp", "mountPath": "/tmp"},
                     ],
                 }],
                 "volumes": [
                     {"name": "server", "configMap": {"name": "server"}},
                     {"name": "greeting", "secret": {"secretName": "greeting"}},
                     {"name": "tmp", "emptyDir": {}},
                     {"name": "signals", "hostPath": {"path": str(signals),
                                                      "type": "DirectoryOrCreate"}},
                 ],
             }},
         }},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def web(cluster: Any) -> Iterator[dict[str, Any]]:
    """The StatefulSet, Ready, with its namespace and the pods' JSON."""
    # Not under pytest's tmp dir: concurrent pytest runs on the machine prune old ones.
    signals = Path(tempfile.mkdtemp(prefix="agentry-node-signals-"))
    try:
        with scratch_namespace(cluster, "node") as ns:
            docs = yaml.safe_dump_all(manifests(ns, signals))
            cluster.kubectl("apply", "-f", "-", input=docs)
            pods = wait_for("2 Ready pods", lambda: ready_pods(cluster, ns, 2), timeout=60)
            yield {"ns": ns, "pods": pods, "signals": signals}
    finally:
        shutil.rmtree(signals, ignore_errors=True)


def pod_list(cluster: Any, ns: str, selector: str = "app=web") -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def ready_pods(cluster: Any, ns: str, count: int) -> list[dict[str, Any]] | None:
    pods = [p for p in pod_list(cluster, ns) if is_ready(p)]
    return pods if len(pods) == count else None


def test_statefulset_pods_answer_on_their_own_ips_and_through_the_api_server_proxy(
    cluster: Any, web: dict[str, Any]
) -> None:
    ns = web["ns"]
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in web["pods"]}
    assert sorted(ips) == ["web-0", "web-1"]
    assert len(set(ips.values())) == 2
    for name, ip in ips.items():
        assert get_json(f"http://{ip}:8000/") == {"pod": name}
        raw = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/pods/{name}:8000/proxy/")
        assert json.loads(raw.stdout) == {"pod": name}
    served = wait_for(
        "service endpoints",
        lambda: (
            cluster.kubectl(
                "get", "--raw", f"/api/v1/namespaces/{ns}/services/web:http/proxy/", check=False
            ).stdout
        ),
    )
    assert json.loads(served)["pod"] in ips


def test_pods_get_their_env_and_a_token_that_rbac_checks(web: dict[str, Any]) -> None:
    pod = web["pods"][0]
    ip = pod["status"]["podIP"]
    env = get_json(f"http://{ip}:8000/env")
    assert env == {
        "POD_NAME": pod["metadata"]["name"],
        "POD_IP": ip,
        "GREETING_ENV": "hello",
        "X_from_cm": "configured",
        "HOSTNAME": pod["metadata"]["name"],
    }
    rbac = get_json(f"http://{ip}:8000/rbac")
    assert rbac == {"configmaps": 200, "secrets": 403, "namespace": web["ns"]}


def test_a_secret_update_reaches_the_mounted_file(cluster: Any, web: dict[str, Any]) -> None:
    ip = web["pods"][0]["status"]["podIP"]
    assert get_json(f"http://{ip}:8000/greeting") == {"greeting": "hello"}
    patch = json.dumps({"stringData": {"greeting": "updated"}})
    cluster.kubectl("patch", "secret", "greeting", "-n", web["ns"], "-p", patch)
    started = time.monotonic()
    wait_for(
        "the updated greeting",
        lambda: get_json(f"http://{ip}:8000/greeting") == {"greeting": "updated"},
        timeout=15,
    )
    assert time.monotonic() - started < 10


def test_kubectl_logs_returns_the_process_output(cluster: Any, web: dict[str, Any]) -> None:
    name, ip = web["pods"][0]["metadata"]["name"], web["pods"][0]["status"]["podIP"]
    out = cluster.kubectl("logs", "-n", web["ns"], name).stdout
    assert f"serving {name} on {ip}" in out
    tail = cluster.kubectl("logs", "-n", web["ns"], name, "--tail=1", "--timestamps").stdout
    assert len(tail.splitlines()) == 1
    assert tail[:4].isdigit()


def test_a_crashing_container_is_restarted_and_keeps_its_previous_logs(
    cluster: Any, web: dict[str, Any]
) -> None:
    ns = web["ns"]
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "crasher", "namespace": ns, "labels": {"app": "crasher"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "crash", "image": "ignored",
            "command": ["sh", "-c", "echo boom; exit 3"]}]},
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def backing_off() -> dict[str, Any] | None:
        status = pod_list(cluster, ns, "app=crasher")[0]["status"]["containerStatuses"][0]
        waiting = status["state"].get("waiting") or {}
        return status if waiting.get("reason") == "CrashLoopBackOff" else None

    # The first restart is immediate; the next one waits the back-off (10 s doubling).
    status = wait_for("a restart, then back-off", backing_off, timeout=30)
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    previous = cluster.kubectl("logs", "-n", ns, "crasher", "--previous").stdout
    assert previous == "boom\n"
    cluster.kubectl("delete", "pod", "crasher", "-n", ns, "--wait=false")


def test_a_pod_is_ready_within_seconds_of_its_creation(cluster: Any, web: dict[str, Any]) -> None:
    ns = web["ns"]
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "quick", "namespace": ns, "labels": {"app": "quick"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "http", "image": "ignored",
            "command": ["python3", "-m", "http.server", "8000"], "workingDir": "/tmp",
            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1}}]},
    }  # fmt: skip
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    wait_for("Ready", lambda: is_ready(pod_list(cluster, ns, "app=quick")[0]), timeout=20)
    elapsed = time.monotonic() - started
    print(f"pod creation -> Ready: {elapsed:.2f}s")
    assert elapsed < 3
    cluster.kubectl("delete", "pod", "quick", "-n", ns, "--wait=false")


def test_deleting_a_pod_sends_sigterm_and_waits_the_grace_period(
    cluster: Any, web: dict[str, Any]
) -> None:
    ns, signals = web["ns"], web["signals"]
    started = time.time()
    cluster.kubectl("delete", "pod", "web-1", "-n", ns, "--wait=true", "--timeout=30s")
    took = time.time() - started
    marker = signals / "web-1"
    assert marker.exists(), "the process never saw SIGTERM"
    assert started <= float(marker.read_text()) <= started + 2
    # The server ignores SIGTERM: the node waits the grace period, then kills it.
    assert GRACE_SECONDS - 0.5 <= took <= GRACE_SECONDS + 4
    wait_for("the StatefulSet's replacement pod", lambda: ready_pods(cluster, ns, 2), timeout=30)


def test_a_volume_over_the_projects_directory_does_not_hide_the_installed_commands(
    cluster: Any, web: dict[str, Any]
) -> None:
    """A pod's emptyDir over /tmp must not hide the node's venv when the repository is
    cloned under /tmp (CI clones anywhere): the launcher binds the software back."""
    ns = web["ns"]
    hidden_parent = str(Path(sys.prefix).resolve().parents[1])  # above the repository
    probe = "import agentry_cluster, sys; print('found', sys.prefix, flush=True)"
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "covered", "namespace": ns},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "ignored",
            "command": [sys.executable, "-c", probe],
            "volumeMounts": [{"name": "scratch", "mountPath": hidden_parent}]}],
            "volumes": [{"name": "scratch", "emptyDir": {}}]},
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def finished() -> str | None:
        pods = kubectl_json(cluster, "pod", "covered", "-n", ns)
        return pods["status"].get("phase") if pods else None

    assert wait_for("the pod to finish", lambda: finished() in ("Succeeded", "Failed"))
    out = cluster.kubectl("logs", "-n", ns, "covered").stdout
    assert out.startswith("found "), out
    assert finished() == "Succeeded"
    cluster.kubectl("delete", "pod", "covered", "-n", ns, "--wait=false")

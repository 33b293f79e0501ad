"""The control plane of the local cluster, checked on the real thing (marker `cluster`).

- the API server reports the pinned Kubernetes release;
- deleting an owner garbage-collects its children (ConfigMaps; a Deployment's ReplicaSet);
- RBAC answers 403 to a ServiceAccount token for an ungranted verb, 200 for a granted one;
- `helm install` of a small chart succeeds and `helm uninstall` removes what it made;
- a second cluster started beside the first gets its own bridge and ports;
- a component that fails to start is named with its log, and nothing is left behind.

None of these needs a pod to run, so they do not depend on the process node's behaviour.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from agentry_cluster import binaries, controlplane, network
from agentry_cluster.errors import StartFailed
from agentry_cluster.layout import StateLayout
from agentry_cluster.pytest_plugin import Cluster

pytestmark = pytest.mark.cluster

CHART = Path(__file__).parent / "charts" / "tiny"


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f}s still not: {what}")
        time.sleep(0.2)


def exists(cluster: Cluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode == 0


def test_the_api_server_reports_the_pinned_kubernetes_release(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == "v1.35.4"
    assert (version["major"], version["minor"]) == ("1", "35")


def test_deleting_an_owner_configmap_garbage_collects_the_configmap_it_owns(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = cluster.kubectl(
        "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(child))
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_until(
        "the child ConfigMap is gone",
        lambda: not exists(cluster, "configmap", "child", "-n", namespace),
    )


def test_deleting_a_deployment_garbage_collects_its_replicaset(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl(
        "create", "deployment", "web", "-n", namespace, "--replicas=0", "--image=unused",
        "--", "sleep", "3600",
    )  # fmt: skip
    selector = ["replicasets", "-n", namespace, "-l", "app=web", "-o", "name"]
    wait_until(
        "the Deployment has a ReplicaSet",
        lambda: bool(cluster.kubectl("get", *selector).stdout.strip()),
    )
    cluster.kubectl("delete", "deployment", "web", "-n", namespace, "--cascade=background")
    wait_until(
        "the ReplicaSet is gone", lambda: not cluster.kubectl("get", *selector).stdout.strip()
    )


def call_with_token(
    cluster: Cluster, token: str, method: str, path: str, body: dict[str, object] | None = None
) -> int:
    context = ssl.create_default_context(cafile=str(cluster.state_dir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        cluster.info["server"] + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_rbac_forbids_a_serviceaccount_an_ungranted_verb_and_allows_a_granted_one(
    cluster: Cluster, namespace: str
) -> None:
    ns = ["-n", namespace]
    cluster.kubectl("create", "serviceaccount", "reader", *ns)
    cluster.kubectl(
        "create", "role", "read-configmaps", "--verb=get,list", "--resource=configmaps", *ns
    )
    cluster.kubectl(
        "create", "rolebinding", "reader", "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader", *ns,
    )  # fmt: skip
    token = cluster.kubectl("create", "token", "reader", "--duration=10m", *ns).stdout.strip()
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"

    wait_until(
        "the RoleBinding lets the token list ConfigMaps",
        lambda: call_with_token(cluster, token, "GET", configmaps) == 200,
        timeout=15,
    )
    new = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-allowed"}}
    assert call_with_token(cluster, token, "POST", configmaps, new) == 403
    assert call_with_token(cluster, token, "GET", "/api/v1/namespaces/default/configmaps") == 403
    assert not exists(cluster, "configmap", "not-allowed", *ns)


def test_helm_installs_a_small_chart_and_uninstall_removes_it(
    cluster: Cluster, namespace: str
) -> None:
    cluster.helm(
        "install", "demo", str(CHART), "-n", namespace, "--set", "greeting=hi", "--wait",
        "--timeout", "60s",
    )  # fmt: skip
    greeting = cluster.kubectl(
        "get", "configmap", "demo-settings", "-n", namespace, "-o", "jsonpath={.data.greeting}"
    ).stdout
    assert greeting == "hi"
    assert exists(cluster, "rolebinding", "demo", "-n", namespace)
    assert "demo" in cluster.helm("list", "-n", namespace, "-q").stdout.split()

    cluster.helm("uninstall", "demo", "-n", namespace, "--wait")
    assert not exists(cluster, "configmap", "demo-settings", "-n", namespace)
    assert not exists(cluster, "serviceaccount", "demo", "-n", namespace)
    assert cluster.helm("list", "-n", namespace, "-q").stdout.strip() == ""


def test_a_second_cluster_runs_beside_the_first_on_its_own_bridge_and_ports(
    cluster: Cluster, tmp_path: Path
) -> None:
    layout = StateLayout(tmp_path / "second")
    second = controlplane.up(layout, "second", binaries.ensure(), with_node=False)
    try:
        assert second.bridge != cluster.info["bridge"]
        assert second.pod_cidr != cluster.info["pod_cidr"]
        assert second.server != cluster.info["server"]
        other = Cluster(layout.root, json.loads(layout.cluster_json.read_text()))
        assert json.loads(other.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
        assert cluster.kubectl("get", "namespace", "default").returncode == 0
    finally:
        controlplane.down(layout)
    assert not controlplane.is_running(layout)
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_a_component_that_fails_to_start_is_reported_and_nothing_is_left_running(
    cluster: Cluster, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "etcd").symlink_to(cluster.bin_dir / "etcd")
    broken = bin_dir / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'flag provided but not defined: --oops' >&2\nexit 1\n")
    broken.chmod(0o755)
    layout = StateLayout(tmp_path / "broken")

    with pytest.raises(StartFailed, match=r"kube-apiserver exited during start") as failure:
        controlplane.up(layout, "broken", bin_dir, with_node=False)

    assert "flag provided but not defined: --oops" in str(failure.value)
    assert not controlplane.is_running(layout)
    info = json.loads(layout.cluster_json.read_text())
    assert not network.bridge_owned_by(info["bridge"], layout.root)

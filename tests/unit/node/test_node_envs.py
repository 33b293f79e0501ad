"""Container environment and command lines: values, valueFrom, envFrom, in-cluster
settings, PATH, and `$(VAR)` expansion as the kubelet does them."""

from __future__ import annotations

import pytest
from agentry_cluster.node.envs import (
    NodeFacts,
    ObjectKey,
    expand,
    expand_command,
    object_data,
    referenced_objects,
    resolve_env,
)
from agentry_cluster.node.errors import ContainerConfigError

NODE = NodeFacts(
    node_name="agentry-node", host_ip="10.244.0.1", api_host="10.244.0.1", api_port=6443,
    path="/venv/bin:/usr/bin",
)  # fmt: skip
POD = {
    "metadata": {"name": "agent-0", "namespace": "team", "uid": "u1", "labels": {"a": "b"}},
    "spec": {"nodeName": "agentry-node", "serviceAccountName": "agent"},
}


def env_of(
    container: dict[str, object], objects: dict[ObjectKey, dict[str, str]]
) -> dict[str, str]:
    return resolve_env(POD, container, objects, NODE, "10.244.0.7")


def test_every_container_can_find_the_api_server_and_the_nodes_console_scripts() -> None:
    env = env_of({"name": "c"}, {})
    assert env["KUBERNETES_SERVICE_HOST"] == "10.244.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["HOSTNAME"] == "agent-0"


def test_a_pod_that_sets_path_keeps_its_own() -> None:
    env = env_of({"name": "c", "env": [{"name": "PATH", "value": "/opt/bin"}]}, {})
    assert env["PATH"] == "/opt/bin"


def test_field_refs_give_the_pods_name_namespace_ip_node_and_service_account() -> None:
    fields = ["metadata.name", "metadata.namespace", "status.podIP", "spec.nodeName",
              "spec.serviceAccountName", "metadata.labels['a']"]  # fmt: skip
    container = {
        "name": "c",
        "env": [
            {"name": f"F{i}", "valueFrom": {"fieldRef": {"fieldPath": f}}}
            for i, f in enumerate(fields)
        ],
    }
    env = env_of(container, {})
    assert [env[f"F{i}"] for i in range(len(fields))] == [
        "agent-0", "team", "10.244.0.7", "agentry-node", "agent", "b",
    ]  # fmt: skip


def test_secret_and_configmap_keys_become_variables() -> None:
    container = {
        "name": "c",
        "env": [
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "level"}}},
        ],
    }
    objects = {
        ObjectKey("Secret", "s"): {"k": "secret!"},
        ObjectKey("ConfigMap", "cm"): {"level": "debug"},
    }
    env = env_of(container, objects)
    assert (env["KEY"], env["LEVEL"]) == ("secret!", "debug")


def test_env_from_adds_every_key_with_its_prefix_and_env_entries_win() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "AGENTRY_"}],
        "env": [{"name": "AGENTRY_PORT", "value": "9090"}],
    }
    objects = {ObjectKey("ConfigMap", "cfg"): {"PORT": "8080", "ENVIRONMENT": "production"}}
    env = env_of(container, objects)
    assert env["AGENTRY_ENVIRONMENT"] == "production"
    assert env["AGENTRY_PORT"] == "9090"


def test_a_missing_secret_stops_the_container_with_a_message_naming_it() -> None:
    container = {"name": "c", "env": [
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]}  # fmt: skip
    with pytest.raises(ContainerConfigError, match='secret "absent" not found'):
        env_of(container, {})


def test_a_missing_optional_reference_is_skipped() -> None:
    container = {"name": "c", "env": [
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k",
                                                     "optional": True}}}]}  # fmt: skip
    assert "K" not in env_of(container, {})


def test_a_missing_key_in_a_present_secret_is_an_error() -> None:
    container = {"name": "c", "env": [
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}]}  # fmt: skip
    with pytest.raises(ContainerConfigError, match="nope"):
        env_of(container, {ObjectKey("Secret", "s"): {"k": "v"}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "1-2"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("cost $5", "cost $5"),
        ("$(A", "$(A"),
        ("end$", "end$"),
    ],
)
def test_variable_references_expand_like_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_command_and_args_expand_from_the_containers_env() -> None:
    container = {"name": "c", "command": ["serve", "--port=$(PORT)"], "args": ["$(NAME)"]}
    assert expand_command(container, {"PORT": "80", "NAME": "x"}) == ["serve", "--port=80", "x"]


def test_a_container_without_a_command_is_refused_because_images_are_ignored() -> None:
    with pytest.raises(ContainerConfigError, match="must set `command`"):
        expand_command({"name": "c", "args": ["x"]}, {})


def test_the_worker_knows_every_object_a_pod_names() -> None:
    cm_key = {"configMapKeyRef": {"name": "c1", "key": "k"}}
    root_ca = {"configMap": {"name": "kube-root-ca.crt"}}
    pod = {"spec": {
        "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s1"}}],
                        "env": [{"name": "X", "valueFrom": cm_key}]}],
        "volumes": [{"name": "v", "secret": {"secretName": "s2"}},
                    {"name": "p", "projected": {"sources": [root_ca]}}],
    }}  # fmt: skip
    assert referenced_objects(pod) == {
        ObjectKey("Secret", "s1"), ObjectKey("ConfigMap", "c1"), ObjectKey("Secret", "s2"),
        ObjectKey("ConfigMap", "kube-root-ca.crt"),
    }  # fmt: skip


def test_secret_values_are_decoded_from_base64() -> None:
    assert object_data("Secret", {"data": {"k": "aGk="}}) == {"k": "hi"}
    assert object_data("ConfigMap", {"data": {"k": "aGk="}}) == {"k": "aGk="}

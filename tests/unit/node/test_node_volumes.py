"""Volume contents and mounts: secret/configMap items and modes, the projected
service-account volume, read-only mounts, the tmpfs over /var/run/secrets, and the
kubelet-style atomic update of mounted files."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from agentry_cluster.node import launch
from agentry_cluster.node.atomic_writer import write_volume
from agentry_cluster.node.envs import NodeFacts, ObjectKey
from agentry_cluster.node.errors import ContainerConfigError
from agentry_cluster.node.pods import remove_created_mount_points
from agentry_cluster.node.volumes import (
    FileSpec,
    Mount,
    TokenKey,
    mount_plan,
    token_requests,
    volume_files,
)

NODE = NodeFacts("agentry-node", "10.244.0.1", "10.244.0.1", 6443, "/usr/bin")
POD = {"metadata": {"name": "p", "namespace": "team", "uid": "u"}, "spec": {}}
SECRET = {"data": {"a": base64.b64encode(b"A").decode(), "b": base64.b64encode(b"B").decode()}}
SA_VOLUME = {
    "name": "kube-api-access",
    "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]},
}  # fmt: skip


def files(
    volume: dict[str, object], raw: dict[ObjectKey, dict[str, object]]
) -> dict[str, FileSpec]:
    tokens = {TokenKey("", 3607): "jwt"}
    return volume_files(volume, POD, raw, tokens, NODE, "10.244.0.5")


def test_a_secret_volume_holds_every_key_with_the_default_mode() -> None:
    got = files({"name": "s", "secret": {"secretName": "s"}}, {ObjectKey("Secret", "s"): SECRET})
    assert got == {"a": FileSpec(b"A", 0o644), "b": FileSpec(b"B", 0o644)}


def test_items_pick_keys_rename_them_and_set_modes() -> None:
    items = [{"key": "a", "path": "dir/first"}, {"key": "b", "path": "x", "mode": 0o600}]
    volume = {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400, "items": items}}
    got = files(volume, {ObjectKey("Secret", "s"): SECRET})
    assert got == {"dir/first": FileSpec(b"A", 0o400), "x": FileSpec(b"B", 0o600)}


def test_the_service_account_volume_has_token_ca_and_namespace() -> None:
    raw = {ObjectKey("ConfigMap", "kube-root-ca.crt"): {"data": {"ca.crt": "PEM"}}}
    got = files(SA_VOLUME, raw)
    assert {k: v.data for k, v in got.items()} == {
        "token": b"jwt", "ca.crt": b"PEM", "namespace": b"team",
    }  # fmt: skip
    assert token_requests({"spec": {"volumes": [SA_VOLUME]}}) == {TokenKey("", 3607)}


def test_a_missing_configmap_is_an_error_unless_optional() -> None:
    with pytest.raises(ContainerConfigError, match='configmap "cfg" not found'):
        files({"name": "c", "configMap": {"name": "cfg"}}, {})
    assert files({"name": "c", "configMap": {"name": "cfg", "optional": True}}, {}) == {}


def test_mounts_start_with_a_tmpfs_over_var_run_secrets_and_parents_come_first(
    tmp_path: Path,
) -> None:
    pod = {"spec": {"volumes": [
        {"name": "state", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "keys", "secret": {"secretName": "k"}},
        {"name": "tmp", "emptyDir": {}},
    ]}}  # fmt: skip
    container = {"volumeMounts": [
        {"name": "keys", "mountPath": "/var/lib/agentry/state/keys"},
        {"name": "state", "mountPath": "/var/lib/agentry/state"},
        {"name": "tmp", "mountPath": "/tmp", "readOnly": True},
    ]}  # fmt: skip
    plan = mount_plan(pod, container, tmp_path, {"data": Path("/pv/data")})
    assert plan == [
        Mount("/var/run/secrets", None, False),
        Mount("/tmp", tmp_path / "volumes" / "tmp", True),
        Mount("/var/lib/agentry/state", Path("/pv/data"), False),
        # secrets are read-only whatever the mount says
        Mount("/var/lib/agentry/state/keys", tmp_path / "volumes" / "keys", True),
    ]


def test_a_container_waits_while_its_claim_is_not_bound(tmp_path: Path) -> None:
    pod = {"spec": {"volumes": [{"name": "s", "persistentVolumeClaim": {"claimName": "d"}}]}}
    container = {"volumeMounts": [{"name": "s", "mountPath": "/data"}]}
    with pytest.raises(ContainerConfigError, match="not bound"):
        mount_plan(pod, container, tmp_path, {})


def test_an_update_swaps_the_data_link_and_drops_removed_keys(tmp_path: Path) -> None:
    assert write_volume(tmp_path, {"a": FileSpec(b"1", 0o644), "b": FileSpec(b"2", 0o600)})
    first = os.readlink(tmp_path / "..data")
    assert (tmp_path / "a").read_bytes() == b"1"
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o600
    assert not write_volume(tmp_path, {"a": FileSpec(b"1", 0o644), "b": FileSpec(b"2", 0o600)})
    assert write_volume(tmp_path, {"a": FileSpec(b"new", 0o644)})
    assert (tmp_path / "a").read_bytes() == b"new"
    assert not (tmp_path / "b").exists()
    assert os.readlink(tmp_path / "..data") != first
    assert not (tmp_path / first).exists()


def test_a_volume_file_path_cannot_escape_its_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stay inside"):
        write_volume(tmp_path, {"../evil": FileSpec(b"x", 0o644)})


def test_mount_points_made_on_the_host_are_removed_when_no_pod_needs_them(tmp_path: Path) -> None:
    record = tmp_path / "node" / "created-mount-points"
    record.parent.mkdir()
    existing = tmp_path / "etc"
    existing.mkdir()
    with open(record, "a") as f:
        launch._makedirs(str(existing / "agentry" / "keys"), f)
    assert (existing / "agentry" / "keys").is_dir()
    remove_created_mount_points(record.parent)
    assert not (existing / "agentry").exists()
    assert existing.is_dir()


def test_a_mount_point_another_clusters_pod_still_uses_is_kept(tmp_path: Path) -> None:
    record = tmp_path / "node" / "created-mount-points"
    record.parent.mkdir()
    secrets_dir = tmp_path / "run" / "secrets"
    with open(record, "a") as f:
        launch._makedirs(str(secrets_dir / "kubernetes.io"), f)
    in_use = {"/", str(secrets_dir)}  # a pod of another cluster has a tmpfs there
    remove_created_mount_points(record.parent, in_use)
    assert secrets_dir.is_dir()
    assert not (secrets_dir / "kubernetes.io").exists()

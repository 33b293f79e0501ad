"""Kubeconfigs: self-contained files with the server, the CA and the client credentials."""

from __future__ import annotations

import base64
import datetime as dt
import stat
from pathlib import Path

import yaml
from agentry_cluster import kubeconfig, pki


def test_a_kubeconfig_selects_one_context_with_the_embedded_credentials() -> None:
    config = kubeconfig.build_kubeconfig(
        cluster="dev", user="admin", server="https://127.0.0.1:6443",
        ca_pem=b"CA", cert_pem=b"CERT", key_pem=b"KEY",
    )  # fmt: skip
    assert config["current-context"] == "dev"
    assert config["contexts"] == [{"name": "dev", "context": {"cluster": "dev", "user": "admin"}}]
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    user = config["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["client-key-data"]) == b"KEY"


def test_a_kubeconfig_from_the_pki_is_private_and_embeds_that_identity(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    pki.write_cluster_pki(tmp_path / "pki", "agentry-node", "10.244.0.1", now)
    path = tmp_path / "node.kubeconfig"
    kubeconfig.write_from_pki(
        path, cluster="dev", server="https://127.0.0.1:1234", pki_dir=tmp_path / "pki", stem="node"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = yaml.safe_load(path.read_text())
    embedded = base64.b64decode(loaded["users"][0]["user"]["client-certificate-data"])
    assert embedded == (tmp_path / "pki" / "node.crt").read_bytes()
    assert loaded["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1234"

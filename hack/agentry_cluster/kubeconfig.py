"""Kubeconfig files for the cluster's identities, with the certificates embedded so each
file works on its own (copy it anywhere, point `KUBECONFIG` at it)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml


def build_kubeconfig(
    *, cluster: str, user: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> dict[str, Any]:
    """One cluster, one user, one context named after the cluster, selected."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert_pem),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Write with mode 0600: the file holds a private key."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_from_pki(path: Path, *, cluster: str, server: str, pki_dir: Path, stem: str) -> None:
    """A kubeconfig for the identity whose certificate is `pki/<stem>.crt`."""
    config = build_kubeconfig(
        cluster=cluster,
        user=stem,
        server=server,
        ca_pem=(pki_dir / "ca.crt").read_bytes(),
        cert_pem=(pki_dir / f"{stem}.crt").read_bytes(),
        key_pem=(pki_dir / f"{stem}.key").read_bytes(),
    )
    write_kubeconfig(path, config)

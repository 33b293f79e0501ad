"""The cluster's certificates: every leaf chains to the CA, carries the names clients
connect by and the groups RBAC and the Node authorizer read, and the keys stay private."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from agentry_cluster import pki
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
BRIDGE_IP = "10.244.3.1"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.write_cluster_pki(path, "agentry-node", BRIDGE_IP, NOW)
    return path


def cert(pki_dir: Path, stem: str) -> x509.Certificate:
    return pki.load_cert(pki_dir / f"{stem}.crt")


def subject(c: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in c.subject.get_attributes_for_oid(oid)]


def sans(c: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    ]


STEMS = [
    "apiserver",
    "admin",
    "controller-manager",
    "node",
    "scheduler",
    "kubelet-serving",
    "apiserver-kubelet-client",
]


@pytest.mark.parametrize("stem", STEMS)
def test_every_certificate_is_signed_by_the_cluster_ca(pki_dir: Path, stem: str) -> None:
    cert(pki_dir, stem).verify_directly_issued_by(cert(pki_dir, "ca"))


def test_the_ca_is_a_ca_and_leaves_are_not(pki_dir: Path) -> None:
    assert cert(pki_dir, "ca").extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = cert(pki_dir, "admin")
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_api_server_certificate_names_every_address_clients_use(pki_dir: Path) -> None:
    dns, ips = sans(cert(pki_dir, "apiserver"))
    assert {"127.0.0.1", BRIDGE_IP, "10.96.0.1"} <= set(ips)
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    } <= set(dns)


def test_kubelet_serving_certificate_is_valid_for_the_bridge_address(pki_dir: Path) -> None:
    _, ips = sans(cert(pki_dir, "kubelet-serving"))
    assert ipaddress.ip_address(BRIDGE_IP) in [ipaddress.ip_address(ip) for ip in ips]


@pytest.mark.parametrize(
    ("stem", "cn", "groups"),
    [
        ("admin", "agentry-admin", ["system:masters"]),
        ("node", "system:node:agentry-node", ["system:nodes"]),
        ("controller-manager", "system:kube-controller-manager", []),
        ("scheduler", "system:kube-scheduler", []),
        ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"]),
    ],
)
def test_client_certificates_carry_the_user_and_groups_kubernetes_reads(
    pki_dir: Path, stem: str, cn: str, groups: list[str]
) -> None:
    c = cert(pki_dir, stem)
    assert subject(c, NameOID.COMMON_NAME) == [cn]
    assert subject(c, NameOID.ORGANIZATION_NAME) == groups
    uses = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in uses


@pytest.mark.parametrize("stem", ["apiserver", "kubelet-serving"])
def test_serving_certificates_are_for_servers(pki_dir: Path, stem: str) -> None:
    uses = cert(pki_dir, stem).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in uses


def test_certificates_are_valid_from_just_before_the_given_time(pki_dir: Path) -> None:
    c = cert(pki_dir, "admin")
    assert c.not_valid_before_utc < NOW < c.not_valid_after_utc
    assert c.not_valid_after_utc - NOW >= dt.timedelta(days=364)


def test_private_keys_are_readable_by_the_owner_only(pki_dir: Path) -> None:
    keys = sorted(pki_dir.glob("*.key"))
    assert {k.name for k in keys} >= {"ca.key", "sa.key", "admin.key", "node.key"}
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_service_account_public_key_is_written_next_to_the_private_one(pki_dir: Path) -> None:
    assert (pki_dir / "sa.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")

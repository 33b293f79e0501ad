"""The cluster's certificates and keys, made with `cryptography`.

One CA signs every certificate: the API server's serving certificate, a client certificate
per identity (admin in `system:masters`, the controller manager, the node in
`system:nodes`, the scheduler identity the node binds pods with, the API server's client
for the kubelet port) and the node's kubelet serving certificate. The service-account
signing key pair is separate (RSA, as JWT RS256 expects). The clock is a parameter, so
tests can check validity windows without waiting.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
# Certificates start an hour in the past, so a slightly slow clock elsewhere still accepts them.
BACKDATE = dt.timedelta(hours=1)

SERVICE_IP = "10.96.0.1"
API_SERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return _key_pem(self.key)


@dataclass(frozen=True)
class Identity:
    """What one certificate says: file stem, subject, groups, names, uses."""

    stem: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    client: bool = True
    server: bool = False


def cluster_identities(node_name: str, host_ip: str) -> list[Identity]:
    """Every leaf certificate of one cluster (the shared contract's `pki/` list); `host_ip`
    is the host's address as pods reach it (the API server's and kubelet port's)."""
    return [
        Identity(
            "apiserver",
            "kube-apiserver",
            dns_names=API_SERVER_DNS,
            ip_addresses=("127.0.0.1", host_ip, SERVICE_IP),
            client=False,
            server=True,
        ),
        Identity("admin", "agentry-admin", ("system:masters",)),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("node", f"system:node:{node_name}", ("system:nodes",)),
        # The node binds pods and provisions PVs as the scheduler would; `up` grants this
        # user the persistent-volume-provisioner role on top of its bootstrap role.
        Identity("scheduler", "system:kube-scheduler"),
        Identity(
            "kubelet-serving",
            f"system:node:{node_name}",
            ("system:nodes",),
            dns_names=(node_name,),
            ip_addresses=(host_ip,),
            client=False,
            server=True,
        ),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
        # The user the API server's bootstrap binding `system:node-proxier` names: the role
        # kubeadm grants kube-proxy (kubeadm binds it to a service account instead).
        Identity("kube-proxy", "system:kube-proxy"),
    ]


def new_key() -> ec.EllipticCurvePrivateKey:
    """P-256: quick to generate, accepted by Go's TLS and Python's ssl alike."""
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(now: dt.datetime, common_name: str = "agentry-local-ca") -> KeyPair:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def issue(ca: KeyPair, identity: Identity, now: dt.datetime) -> KeyPair:
    """A leaf certificate for `identity`, signed by `ca`."""
    key = new_key()
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in identity.organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name))
    uses = []
    if identity.server:
        uses.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if identity.client:
        uses.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(uses), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in identity.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in identity.ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def new_service_account_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_cluster_pki(pki_dir: Path, node_name: str, host_ip: str, now: dt.datetime) -> None:
    """Make the CA, every leaf and the service-account keys under `pki_dir`."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = new_ca(now)
    _write_pair(pki_dir, "ca", ca)
    for identity in cluster_identities(node_name, host_ip):
        _write_pair(pki_dir, identity.stem, issue(ca, identity, now))
    sa = new_service_account_key()
    _write_private(pki_dir / "sa.key", _key_pem(sa))
    (pki_dir / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pair(pki_dir: Path, stem: str, pair: KeyPair) -> None:
    (pki_dir / f"{stem}.crt").write_bytes(pair.cert_pem())
    _write_private(pki_dir / f"{stem}.key", pair.key_pem())


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)

"""How the operator's client reaches the API server, with no cluster: a kubeconfig with a
client certificate and CA inline, with a token and a CA file beside it, a service
account whose token the kubelet rotates, a user whose credentials come from a program
(refused, naming the kubeconfig and the user), and no response body in the log at debug.

The server is aiohttp over real TLS with certificates from the local cluster's PKI code.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_cluster import pki
from agentry_operator.credentials import Credentials, CredentialsError, login
from agentry_operator.kube import Kube, KubeError
from aiohttp import web
from aiohttp.test_utils import TestServer

NOW = dt.datetime.now(dt.UTC)
SECRET_VALUE = "c2VjcmV0LWtleS1tYXRlcmlhbA=="


@dataclass
class Pki:
    ca: pki.KeyPair
    server: pki.KeyPair
    client: pki.KeyPair


@pytest.fixture(scope="module")
def certs() -> Pki:
    ca = pki.new_ca(NOW)
    server = pki.issue(
        ca, pki.Identity("api", "api", ip_addresses=("127.0.0.1",), client=False, server=True), NOW
    )
    return Pki(ca, server, pki.issue(ca, pki.Identity("ada", "ada"), NOW))


@dataclass
class Api:
    """An API server stand-in: answers a ConfigMap GET with who called, and refuses
    tokens not in `tokens` with 401."""

    url: str
    port: int
    tokens: set[str]


@pytest.fixture
async def api(certs: Pki, tmp_path: Path) -> AsyncIterator[Api]:
    tokens: set[str] = set()

    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer ") and authorization[7:] not in tokens:
            return web.json_response({"kind": "Status", "message": "Unauthorized"}, status=401)
        user = subject.get("commonName") or authorization
        return web.json_response({"kind": "ConfigMap", "data": {"user": user}})

    async def secret(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Secret", "data": {"key": SECRET_VALUE}})

    (tmp_path / "server.crt").write_bytes(certs.server.cert_pem())
    (tmp_path / "server.key").write_bytes(certs.server.key_pem())
    (tmp_path / "ca.crt").write_bytes(certs.ca.cert_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.crt")
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_OPTIONAL
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/configmaps/whoami", whoami)
    app.router.add_get("/api/v1/namespaces/ns/secrets/key", secret)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    assert server.port is not None
    yield Api(f"https://127.0.0.1:{server.port}", server.port, tokens)
    await server.close()


def write_kubeconfig(path: Path, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "ada", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "ada"}}],
                "current-context": "x",
            }
        )
    )
    return path


async def caller(kube: Kube) -> str:
    """Who the server saw: the client certificate's name or the Authorization header."""
    try:
        found = await kube.get("ConfigMap", "ns", "whoami")
        assert found is not None
        return str(found["data"]["user"])
    finally:
        await kube.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_kubeconfig_with_inline_certificates_authenticates_by_client_certificate(
    api: Api, certs: Pki, tmp_path: Path
) -> None:
    user = {
        "client-certificate-data": b64(certs.client.cert_pem()),
        "client-key-data": b64(certs.client.key_pem()),
    }
    ca = {"certificate-authority-data": b64(certs.ca.cert_pem())}
    config = write_kubeconfig(tmp_path / "config", api.url, user, **ca)
    assert await caller(await Kube.connect(str(config))) == "ada"


async def test_a_kubeconfig_with_a_token_and_a_ca_file_beside_it(
    api: Api, certs: Pki, tmp_path: Path
) -> None:
    api.tokens.add("t0ken")
    directory = tmp_path / "kube"
    directory.mkdir()
    (directory / "cluster-ca.pem").write_bytes(certs.ca.cert_pem())
    config = write_kubeconfig(
        directory / "config",
        api.url,
        {"token": "t0ken"},
        **{"certificate-authority": "cluster-ca.pem"},  # relative to the kubeconfig
    )
    assert await caller(await Kube.connect(str(config))) == "Bearer t0ken"


async def test_a_server_certificate_from_another_ca_is_refused(api: Api, tmp_path: Path) -> None:
    other = pki.new_ca(NOW, "someone-else")
    config = write_kubeconfig(
        tmp_path / "config",
        api.url,
        {"token": "t0ken"},
        **{"certificate-authority-data": b64(other.cert_pem())},
    )
    kube = await Kube.connect(str(config))
    with pytest.raises(
        KubeError,
        match=r"^GET /api/v1/namespaces/ns/configmaps/whoami: .*CERTIFICATE_VERIFY_FAILED",
    ):
        await caller(kube)


@pytest.fixture
def service_account(certs: Pki, tmp_path: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "ca.crt").write_bytes(certs.ca.cert_pem())
    (directory / "namespace").write_text("agentry-system")
    (directory / "token").write_text("first\n")
    return directory


async def test_a_rotated_service_account_token_is_used_after_a_401(
    api: Api, service_account: Path
) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
    found = login(None, service_account=service_account, environ=environ)
    assert found.info.default_namespace == "agentry-system"
    kube = Kube(Credentials(found))
    api.tokens.add("first")
    assert await kube.get("ConfigMap", "ns", "whoami") is not None
    # The kubelet writes a new token and the API server stops taking the old one.
    (service_account / "token").write_text("second\n")
    api.tokens.clear()
    api.tokens.add("second")
    assert await caller(kube) == "Bearer second"


def test_a_token_from_a_file_is_read_again_once_a_minute_old(service_account: Path) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    now = [0.0]
    credentials = Credentials(
        login(None, service_account=service_account, environ=environ), clock=lambda: now[0]
    )
    assert credentials.server == "https://10.96.0.1:443"
    (service_account / "token").write_text("second")
    now[0] = 59.0
    assert credentials.headers() == {"Authorization": "Bearer first"}
    now[0] = 60.0
    assert credentials.headers() == {"Authorization": "Bearer second"}


def test_in_a_pod_without_a_token_the_error_says_so(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="in a pod, but no service-account token"):
        login(None, service_account=tmp_path, environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"})


def test_a_token_file_named_by_the_kubeconfig_is_followed(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    config = write_kubeconfig(tmp_path / "config", "https://api:6443", {"tokenFile": "token"})
    found = login(str(config))
    assert found.info.token == "from-file"
    assert found.token_path == tmp_path / "token"


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}},
        {"auth-provider": {"name": "oidc", "config": {"access-token": "expired"}}},
    ],
)
def test_a_credential_plugin_is_refused_naming_the_kubeconfig_and_user(
    tmp_path: Path, user: dict[str, Any]
) -> None:
    config = write_kubeconfig(tmp_path / "config", "https://api:6443", user)
    with pytest.raises(CredentialsError) as caught:
        login(str(config))
    message = str(caught.value)
    assert str(config) in message
    assert "user 'ada'" in message
    assert f"'{next(iter(user))}'" in message


def test_a_kubeconfig_without_a_current_context_says_so(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": []}))
    with pytest.raises(CredentialsError, match=f"kubeconfig {config}: no current-context"):
        login(str(config))


@pytest.fixture
def debug_logs() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    yield
    root.setLevel(level)


@pytest.mark.usefixtures("debug_logs")
async def test_at_debug_nothing_logs_what_the_client_reads(
    api: Api, certs: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api.tokens.add("t0ken")
    config = write_kubeconfig(
        tmp_path / "config",
        api.url,
        {"token": "t0ken"},
        **{"certificate-authority-data": b64(certs.ca.cert_pem())},
    )
    kube = await Kube.connect(str(config))
    with caplog.at_level(logging.DEBUG):
        found = await kube.get("Secret", "ns", "key")
    await kube.close()
    assert found is not None
    assert found["data"]["key"] == SECRET_VALUE
    assert SECRET_VALUE not in caplog.text
    assert "t0ken" not in caplog.text

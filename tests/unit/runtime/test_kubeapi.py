"""The runtime's Kubernetes API client and its credentials, against a TLS server of the
test's own (no cluster).

Checks: in a pod, the service account's token and CA reach the API server's Service
address (an IPv6 host in brackets); a token the kubelet rotated on disk is sent once the
one held is a minute old, and at once after a 401. Outside a pod, the kubeconfig's current
context (the first path of KUBECONFIG) gives the server and a token, a token file
(relative to the kubeconfig), a CA as data or as a file, or a client certificate as
data, which a server that checks client certificates accepts; the certificate data does
not stay on disk; the server's certificate is verified unless the kubeconfig says
`insecure-skip-tls-verify`. A user with `exec` or `auth-provider` is refused with a
message naming the kubeconfig and the user, as is a missing kubeconfig; no token shows
in a repr or an error. Importing the runtime's app loads no Kubernetes client library,
and a runtime with neither the heartbeat nor the configmap backend makes no client; one
with both gets a client each, which closing the store and the publisher closes.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentry_cluster.pki import Identity, KeyPair, issue, new_ca
from aiohttp import web

from agent_runtime import lifecycle
from agent_runtime.crypto import KeyRing
from agent_runtime.errors import ConfigError
from agent_runtime.kubeapi import (
    ApiUnreachable,
    KubeClient,
    client_from_environment,
    in_cluster_credentials,
    kubeconfig_credentials,
)
from tests.support.runtime import make_settings
from tests.support.runtime_process import free_port

NOW = dt.datetime.now(dt.UTC)
PATH = "/api/v1/namespaces/team-a/configmaps/demo-0-state"


@dataclass
class ApiServer:
    """An HTTPS server that answers with the bearer token and client certificate it saw;
    the token "revoked" is answered 401, as the API server answers an expired one."""

    url: str
    port: int
    ca: KeyPair
    admin: KeyPair


async def whoami(request: web.Request) -> web.Response:
    authorization = request.headers.get("Authorization", "")
    if authorization == "Bearer revoked":
        return web.json_response({"kind": "Status", "reason": "Unauthorized"}, status=401)
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
    return web.json_response(
        {"authorization": authorization, "user": subject.get("commonName"), "path": request.path}
    )


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    ca = new_ca(NOW)
    serving = issue(
        ca, Identity("apiserver", "kube-apiserver", ip_addresses=("127.0.0.1",), server=True), NOW
    )
    admin = issue(ca, Identity("admin", "agentry-admin", ("system:masters",)), NOW)
    pki = tmp_path / "server-pki"
    pki.mkdir()
    (pki / "tls.crt").write_bytes(serving.cert_pem())
    (pki / "tls.key").write_bytes(serving.key_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=ca.cert_pem().decode())
    context.load_cert_chain(pki / "tls.crt", pki / "tls.key")
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked when sent
    app = web.Application()
    app.router.add_get("/{tail:.*}", whoami)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield ApiServer(f"https://127.0.0.1:{port}", port, ca, admin)
    await runner.cleanup()


async def ask(client: KubeClient) -> dict[str, Any]:
    answer = await client.request("GET", PATH)
    assert answer.status == 200, answer.body
    return answer.body


def service_account(directory: Path, server: ApiServer, token: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "token").write_text(token + "\n")
    (directory / "ca.crt").write_bytes(server.ca.cert_pem())
    return directory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def in_pod(server: ApiServer) -> dict[str, str]:
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}


async def test_in_a_pod_the_service_account_token_rotated_on_disk_is_sent_after_a_minute(
    api_server: ApiServer, tmp_path: Path
) -> None:
    directory = service_account(tmp_path / "sa", api_server, "first")
    clock = Clock()
    client = client_from_environment(in_pod(api_server), service_account_dir=directory, clock=clock)
    try:
        seen = await ask(client)
        assert seen == {"authorization": "Bearer first", "user": None, "path": PATH}
        (directory / "token").write_text("second\n")  # the kubelet rotates it
        clock.now += 59
        assert (await ask(client))["authorization"] == "Bearer first"
        clock.now += 1
        assert (await ask(client))["authorization"] == "Bearer second"
    finally:
        await client.close()


async def test_a_token_the_api_server_refuses_is_read_again_at_once(
    api_server: ApiServer, tmp_path: Path
) -> None:
    directory = service_account(tmp_path / "sa", api_server, "revoked")
    client = client_from_environment(
        in_pod(api_server), service_account_dir=directory, clock=Clock()
    )
    try:
        refused = await client.request("GET", PATH)
        assert refused.status == 401
        assert refused.describe() == "401 Unauthorized"
        (directory / "token").write_text("fresh")
        assert (await ask(client))["authorization"] == "Bearer fresh"  # no minute's wait
    finally:
        await client.close()


def test_an_ipv6_service_host_is_put_in_brackets(api_server: ApiServer, tmp_path: Path) -> None:
    directory = service_account(tmp_path / "sa", api_server, "t")
    environ = {"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_credentials(environ, directory).server == "https://[fd00:10:96::1]:443"


def test_in_a_pod_without_a_mounted_token_the_error_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="automountServiceAccountToken") as raised:
        in_cluster_credentials({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, tmp_path / "none")
    assert raised.value.setting == "KUBERNETES_SERVICE_HOST"
    assert str(tmp_path / "none" / "token") in str(raised.value)


def write_kubeconfig(
    path: Path, server: str, user: dict[str, Any], cluster: dict[str, Any] | None = None
) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "dev-user", "user": user}],
        "contexts": [
            {"name": "other", "context": {"cluster": "missing", "user": "missing"}},
            {"name": "dev", "context": {"cluster": "dev", "user": "dev-user"}},
        ],
        "current-context": "dev",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def ca_data(server: ApiServer) -> dict[str, str]:
    return {"certificate-authority-data": base64.b64encode(server.ca.cert_pem()).decode()}


async def test_a_kubeconfig_token_and_ca_data_reach_the_server(
    api_server: ApiServer, tmp_path: Path
) -> None:
    config = write_kubeconfig(
        tmp_path / "kube" / "config", api_server.url, {"token": "dev-token"}, ca_data(api_server)
    )
    environ = {"KUBECONFIG": f"{config}{os.pathsep}{tmp_path / 'not-read'}"}
    client = client_from_environment(environ, home=tmp_path / "home")
    try:
        assert (await ask(client))["authorization"] == "Bearer dev-token"
    finally:
        await client.close()
    assert "dev-token" not in repr(client.credentials)


async def test_a_kubeconfig_token_file_is_relative_to_the_kubeconfig_and_re_read(
    api_server: ApiServer, tmp_path: Path
) -> None:
    kube = tmp_path / "kube"
    kube.mkdir()
    (kube / "token").write_text("from-file")
    (kube / "ca.crt").write_bytes(api_server.ca.cert_pem())
    config = write_kubeconfig(
        kube / "config",
        api_server.url,
        {"tokenFile": "token"},
        {"certificate-authority": "ca.crt"},
    )
    clock = Clock()
    client = KubeClient(kubeconfig_credentials(config, clock))
    try:
        assert (await ask(client))["authorization"] == "Bearer from-file"
        (kube / "token").write_text("renewed")
        clock.now += 60
        assert (await ask(client))["authorization"] == "Bearer renewed"
    finally:
        await client.close()


async def test_a_kubeconfig_client_certificate_given_as_data_is_presented_and_not_kept_on_disk(
    api_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    user = {
        "client-certificate-data": base64.b64encode(api_server.admin.cert_pem()).decode(),
        "client-key-data": base64.b64encode(api_server.admin.key_pem()).decode(),
    }
    config = write_kubeconfig(tmp_path / "config", api_server.url, user, ca_data(api_server))
    client = client_from_environment({"KUBECONFIG": str(config)})
    assert list(scratch.iterdir()) == []
    try:
        seen = await ask(client)
        assert seen["user"] == "agentry-admin"
        assert seen["authorization"] == ""
    finally:
        await client.close()


async def test_the_server_certificate_is_verified_unless_the_kubeconfig_skips_it(
    api_server: ApiServer, tmp_path: Path
) -> None:
    unknown_ca = write_kubeconfig(tmp_path / "a", api_server.url, {"token": "s3cr3t"})
    client = KubeClient(kubeconfig_credentials(unknown_ca))
    try:
        with pytest.raises(ApiUnreachable, match="Certificate") as raised:
            await client.request("GET", PATH)
        assert "s3cr3t" not in str(raised.value)
    finally:
        await client.close()
    skipping = write_kubeconfig(
        tmp_path / "b", api_server.url, {"token": "t"}, {"insecure-skip-tls-verify": True}
    )
    client = KubeClient(kubeconfig_credentials(skipping))
    try:
        assert (await ask(client))["authorization"] == "Bearer t"
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("exec", {"apiVersion": "client.authentication.k8s.io/v1", "command": "gke-auth"}),
        ("auth-provider", {"name": "oidc", "config": {"id-token": "x"}}),
    ],
)
def test_a_kubeconfig_user_with_a_plugin_is_refused_naming_the_file_and_the_user(
    tmp_path: Path, method: str, settings: dict[str, Any]
) -> None:
    config = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", {method: settings})
    with pytest.raises(ConfigError) as raised:
        client_from_environment({"KUBECONFIG": str(config)})
    message = str(raised.value)
    assert raised.value.setting == "KUBECONFIG"
    assert str(config) in message
    assert "'dev-user'" in message
    assert repr(method) in message
    assert "pod" in message


def test_without_a_pod_or_a_kubeconfig_the_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST unset") as raised:
        client_from_environment({}, home=tmp_path)
    assert str(tmp_path / ".kube" / "config") in str(raised.value)


def test_importing_the_runtime_app_loads_no_kubernetes_client_library() -> None:
    probe = (
        "import agent_runtime.app, agent_runtime.cli, agent_runtime.lifecycle, sys; "
        "print([m for m in sys.modules if m.startswith('kubernetes')])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


class RecordedClient(KubeClient):
    """A client that notes when it is closed."""

    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def test_a_runtime_without_heartbeat_or_configmap_backend_makes_no_client(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[RecordedClient] = []

    def making(*args: Any, **kwargs: Any) -> KubeClient:
        made.append(RecordedClient.for_url("http://127.0.0.1:1"))
        return made[-1]

    monkeypatch.setattr(lifecycle, "client_from_environment", making)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    for backend in ("memory", "pvc"):
        settings = make_settings(tmp_path, state_backend=backend, heartbeat="none")
        await lifecycle.build_publisher(settings)
        await lifecycle.build_any_store(settings, keyring)
    assert made == []

    settings = make_settings(tmp_path, state_backend="configmap", heartbeat="auto")
    publisher = await lifecycle.build_publisher(settings)
    store = await lifecycle.build_any_store(settings, keyring)
    assert store is not None
    assert len(made) == 2
    await publisher.close()
    await store.close()
    assert [client.closed for client in made] == [True, True]

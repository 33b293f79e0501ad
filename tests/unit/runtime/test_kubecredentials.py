"""Kubernetes credentials (``agent_runtime/kubecredentials.py``), as the runtime's client
(``kubeapi.KubeClient``) and the operator's (``agentry_operator.kube.Kube``) use them,
against an API server of the test's own over real TLS (no cluster).

Each behaviour is checked once, for both programs where both have it:
- in a pod, the service account's token and CA; a token the kubelet rotated on disk is
  sent once the one held is a minute old, and on the request after a 401 (whether the new
  token was written before or after the refusal); a pod without a token fails at startup
  in each program's words;
- outside a pod, the kubeconfig's current context: a token and CA data, a token file and
  CA file relative to the kubeconfig (the token file read again after a minute), a client
  certificate as data (presented, and not left on disk), the server's certificate checked
  unless `insecure-skip-tls-verify`; a user with `exec` or `auth-provider` is refused by
  each program naming the file, the user and the field, as is a missing kubeconfig;
- the shared reading: service addresses (IPv6 in brackets), merged kubeconfigs with paths
  relative to each entry's file, every way a kubeconfig can be unusable, a token file
  that cannot be read again (the token kept, the file named in a warning);
- per program: the runtime reads only the first KUBECONFIG path and refuses basic auth;
  the operator hands kopf every field its ConnectionInfo takes.
No token, password or key shows in an error, a log line or a repr.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import kopf
import pytest
import yaml
from agentry_cluster.pki import Identity, KeyPair, issue, new_ca
from agentry_operator.credentials import Credentials, CredentialsError, login
from agentry_operator.kube import Kube, KubeError
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent_runtime.errors import ConfigError
from agent_runtime.kubeapi import (
    ApiUnreachable,
    KubeClient,
    client_from_environment,
    kubeconfig_credentials,
    kubeconfig_path,
)
from agent_runtime.kubecredentials import (
    KubeconfigError,
    TokenFile,
    read_kubeconfig,
    service_account,
)
from tests.support.kubeconfig import write_kubeconfig

NOW = dt.datetime.now(dt.UTC)
SECRET = "s3cr3t-t0ken"

# -- the API server -------------------------------------------------------------------------


@dataclass
class ApiServer:
    """HTTPS; answers every GET with the bearer token and client certificate it saw, and
    401 to a token in ``refused``; ``seen`` lists every Authorization header."""

    url: str
    port: int
    ca: KeyPair
    admin: KeyPair
    refused: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiServer]:
    ca = new_ca(NOW)
    serving = issue(ca, Identity("api", "api", ip_addresses=("127.0.0.1",), server=True), NOW)
    admin = issue(ca, Identity("admin", "agentry-admin", ("system:masters",)), NOW)
    pki = tmp_path / "server-pki"
    pki.mkdir()
    (pki / "tls.crt").write_bytes(serving.cert_pem())
    (pki / "tls.key").write_bytes(serving.key_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=ca.cert_pem().decode())
    context.load_cert_chain(pki / "tls.crt", pki / "tls.key")
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked when sent
    refused: set[str] = set()
    seen: list[str] = []

    async def whoami(request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        seen.append(authorization)
        if authorization.removeprefix("Bearer ") in refused:
            return web.json_response({"kind": "Status", "reason": "Unauthorized"}, status=401)
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
        return web.json_response(
            {"authorization": authorization, "user": subject.get("commonName")}
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", whoami)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    assert server.port is not None
    yield ApiServer(f"https://127.0.0.1:{server.port}", server.port, ca, admin, refused, seen)
    await server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_service_account(directory: Path, server: ApiServer, token: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "token").write_text(token + "\n")
    (directory / "ca.crt").write_bytes(server.ca.cert_pem())
    (directory / "namespace").write_text("agentry-system")
    return directory


def in_pod(server: ApiServer) -> dict[str, str]:
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ca_data(server: ApiServer) -> dict[str, str]:
    return {"certificate-authority-data": b64(server.ca.cert_pem())}


# -- the two programs -----------------------------------------------------------------------


class Failed(Exception):
    """A call without a 2xx answer: ``status`` 0 when none came (TLS, connection)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Client(Protocol):
    async def ask(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class RuntimeClient:
    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def ask(self) -> dict[str, Any]:
        try:
            answer = await self.client.request("GET", "/api/v1/namespaces/ns/configmaps/whoami")
        except ApiUnreachable as exc:
            raise Failed(0, str(exc)) from exc
        if not answer.ok:
            raise Failed(answer.status, answer.describe())
        return answer.body

    async def close(self) -> None:
        await self.client.close()


class OperatorClient:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def ask(self) -> dict[str, Any]:
        try:
            found = await self.kube.get("ConfigMap", "ns", "whoami")
        except KubeError as exc:
            raise Failed(exc.status, str(exc)) from exc
        assert found is not None
        return found

    async def close(self) -> None:
        await self.kube.close()


@dataclass(frozen=True)
class Program:
    """One program's way to its client, and the words of its startup errors."""

    name: str  # as refusals name it
    error: type[Exception]
    no_token: str  # what a pod without a token is told
    in_pod: Callable[[Mapping[str, str], Path, Callable[[], float]], Client]
    outside_a_pod: Callable[[Mapping[str, str], Callable[[], float]], Client]
    kubeconfig: Callable[[Path, Callable[[], float]], Client]


RUNTIME = Program(
    "the agent runtime",
    ConfigError,
    "automountServiceAccountToken",
    lambda environ, directory, clock: RuntimeClient(
        client_from_environment(environ, service_account_dir=directory, clock=clock)
    ),
    lambda environ, clock: RuntimeClient(client_from_environment(environ, clock=clock)),
    lambda path, clock: RuntimeClient(KubeClient(kubeconfig_credentials(path, clock))),
)
OPERATOR = Program(
    "the operator",
    CredentialsError,
    "in a pod, but no service-account token",
    lambda environ, directory, clock: OperatorClient(
        Kube(Credentials(login(None, service_account=directory, environ=environ, clock=clock)))
    ),
    lambda environ, clock: OperatorClient(
        Kube(Credentials(login(environ.get("KUBECONFIG"), environ=environ, clock=clock)))
    ),
    lambda path, clock: OperatorClient(Kube(Credentials(login(str(path), clock=clock)))),
)


@pytest.fixture(params=[RUNTIME, OPERATOR], ids=["runtime", "operator"])
def program(request: pytest.FixtureRequest) -> Program:
    return request.param  # type: ignore[no-any-return]


async def ask_once(client: Client) -> dict[str, Any]:
    try:
        return await client.ask()
    finally:
        await client.close()


# -- in a pod -------------------------------------------------------------------------------


async def test_in_a_pod_the_service_account_token_rotated_on_disk_is_sent_after_a_minute(
    program: Program, api: ApiServer, tmp_path: Path
) -> None:
    directory = write_service_account(tmp_path / "sa", api, "first")
    clock = Clock()
    client = program.in_pod(in_pod(api), directory, clock)
    try:
        assert await client.ask() == {"authorization": "Bearer first", "user": None}
        (directory / "token").write_text("second\n")  # the kubelet rotates it
        clock.now += 59
        assert (await client.ask())["authorization"] == "Bearer first"
        clock.now += 1
        assert (await client.ask())["authorization"] == "Bearer second"
    finally:
        await client.close()


@pytest.mark.parametrize("rotated", ["before the refusal", "after the refusal"])
async def test_after_a_401_the_next_request_carries_the_token_read_afresh(
    program: Program, api: ApiServer, tmp_path: Path, rotated: str
) -> None:
    directory = write_service_account(tmp_path / "sa", api, "first")
    api.refused.add("first")
    client = program.in_pod(in_pod(api), directory, Clock())  # the clock never moves
    if rotated == "before the refusal":
        (directory / "token").write_text("second\n")
    refusals: list[Failed] = []
    try:
        try:
            answer = await client.ask()  # the operator retries at once with a new token
        except Failed as refusal:
            refusals.append(refusal)
            (directory / "token").write_text("second\n")
            answer = await client.ask()
    finally:
        await client.close()
    assert [(r.status, "401 Unauthorized" in str(r)) for r in refusals] in ([], [(401, True)])
    assert answer["authorization"] == "Bearer second"
    assert api.seen == ["Bearer first", "Bearer second"]


async def test_in_a_pod_without_a_mounted_token_each_program_says_so(
    program: Program, api: ApiServer, tmp_path: Path
) -> None:
    with pytest.raises(program.error, match=program.no_token) as raised:
        program.in_pod(in_pod(api), tmp_path / "none", Clock())
    assert str(tmp_path / "none" / "token") in str(raised.value)


@pytest.mark.parametrize(
    ("host", "port", "server"),
    [
        ("10.96.0.1", None, "https://10.96.0.1:443"),
        ("10.96.0.1", "6443", "https://10.96.0.1:6443"),
        ("fd00:10:96::1", "443", "https://[fd00:10:96::1]:443"),
    ],
)
def test_the_service_address_comes_from_the_environment(
    tmp_path: Path, host: str, port: str | None, server: str
) -> None:
    (tmp_path / "token").write_text("t")
    environ = {"KUBERNETES_SERVICE_HOST": host} | (
        {"KUBERNETES_SERVICE_PORT": port} if port else {}
    )
    assert service_account(environ, tmp_path).server == server


# -- outside a pod: the kubeconfig ----------------------------------------------------------


async def test_a_kubeconfig_token_and_ca_data_reach_the_server(
    program: Program, api: ApiServer, tmp_path: Path
) -> None:
    config = write_kubeconfig(tmp_path / "config", api.url, {"token": SECRET}, ca_data(api))
    assert (await ask_once(program.kubeconfig(config, Clock())))["authorization"] == (
        f"Bearer {SECRET}"
    )


async def test_a_kubeconfig_token_file_and_ca_file_are_relative_to_it_and_the_token_re_read(
    program: Program, api: ApiServer, tmp_path: Path
) -> None:
    kube = tmp_path / "kube"
    kube.mkdir()
    (kube / "token").write_text("from-file")
    (kube / "cluster-ca.pem").write_bytes(api.ca.cert_pem())
    config = write_kubeconfig(
        kube / "config",
        api.url,
        {"tokenFile": "token"},
        {"certificate-authority": "cluster-ca.pem"},
    )
    clock = Clock()
    client = program.kubeconfig(config, clock)
    try:
        assert (await client.ask())["authorization"] == "Bearer from-file"
        (kube / "token").write_text("renewed")
        clock.now += 60
        assert (await client.ask())["authorization"] == "Bearer renewed"
    finally:
        await client.close()


async def test_a_kubeconfig_client_certificate_given_as_data_is_presented_and_not_kept_on_disk(
    program: Program, api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    user = {
        "client-certificate-data": b64(api.admin.cert_pem()),
        "client-key-data": b64(api.admin.key_pem()),
    }
    config = write_kubeconfig(tmp_path / "config", api.url, user, ca_data(api))
    client = program.kubeconfig(config, Clock())
    assert list(scratch.iterdir()) == []
    assert await ask_once(client) == {"authorization": "", "user": "agentry-admin"}


async def test_the_server_certificate_is_verified_unless_the_kubeconfig_skips_it(
    program: Program, api: ApiServer, tmp_path: Path
) -> None:
    other_ca = {"certificate-authority-data": b64(new_ca(NOW, "someone-else").cert_pem())}
    checked = write_kubeconfig(tmp_path / "a", api.url, {"token": SECRET}, other_ca)
    with pytest.raises(Failed, match="Certificate") as raised:
        await ask_once(program.kubeconfig(checked, Clock()))
    assert raised.value.status == 0
    assert SECRET not in str(raised.value)
    skipping = write_kubeconfig(
        tmp_path / "b", api.url, {"token": "t"}, {"insecure-skip-tls-verify": True}
    )
    assert (await ask_once(program.kubeconfig(skipping, Clock())))["authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("exec", {"apiVersion": "client.authentication.k8s.io/v1", "command": "gke-auth"}),
        ("auth-provider", {"name": "oidc", "config": {"access-token": SECRET}}),
    ],
)
def test_a_kubeconfig_user_with_a_plugin_is_refused_naming_the_file_and_the_user(
    program: Program, tmp_path: Path, method: str, settings: dict[str, Any]
) -> None:
    config = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", {method: settings})
    with pytest.raises(program.error) as raised:
        program.kubeconfig(config, Clock())
    message = str(raised.value)
    assert f"{config}: user 'dev-user' gets its credentials from {method!r}" in message
    assert f"which {program.name} does not support" in message
    assert SECRET not in message


def test_without_a_pod_or_a_kubeconfig_the_error_names_the_path(
    program: Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(program.error, match="cannot be read") as raised:
        program.outside_a_pod({}, Clock())
    assert str(tmp_path / ".kube" / "config") in str(raised.value)


# -- per program ----------------------------------------------------------------------------


def test_the_runtime_words_a_kubeconfig_error_as_a_setting_for_outside_a_pod(
    tmp_path: Path,
) -> None:
    config = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", {"exec": {}})
    with pytest.raises(ConfigError) as raised:
        kubeconfig_credentials(config)
    assert raised.value.setting == "KUBECONFIG"
    assert "outside a pod (KUBERNETES_SERVICE_HOST unset)" in raised.value.reason


@pytest.mark.parametrize(
    ("kubeconfig", "first"),
    [("", None), ("a", "a"), (f"a{os.pathsep}b", "a"), (f"{os.pathsep}b", "b")],
)
def test_the_runtime_reads_the_first_kubeconfig_path_only(
    tmp_path: Path, kubeconfig: str, first: str | None
) -> None:
    expected = Path(first) if first else tmp_path / ".kube" / "config"
    assert kubeconfig_path({"KUBECONFIG": kubeconfig}, tmp_path) == expected


def test_the_runtime_refuses_basic_auth_which_its_client_does_not_send(tmp_path: Path) -> None:
    user = {"username": "ada", "password": SECRET}
    config = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", user)
    with pytest.raises(ConfigError, match="gets its credentials from 'username'") as raised:
        kubeconfig_credentials(config)
    assert SECRET not in str(raised.value)


def test_the_operator_gives_kopf_every_field_its_connection_info_takes(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not checked here")
    (tmp_path / "sa").mkdir()
    (tmp_path / "sa" / "token").write_text("t")
    (tmp_path / "sa" / "namespace").write_text("agentry-system")
    without_ca = login(
        None, service_account=tmp_path / "sa", environ={"KUBERNETES_SERVICE_HOST": "h"}
    )
    assert without_ca.info == kopf.ConnectionInfo(
        server="https://h:443", token="t", default_namespace="agentry-system"
    )
    cluster = {"certificate-authority": "ca.crt", "proxy-url": "http://proxy:3128"}
    user = {"client-certificate": "c.crt", "client-key-data": b64(b"KEY"), "username": "ada"}
    config = write_kubeconfig(
        tmp_path / "config", "https://api:6443", user | {"password": SECRET}, cluster
    )
    document = yaml.safe_load(config.read_text())
    document["contexts"][1]["context"]["namespace"] = "team-a"
    config.write_text(yaml.safe_dump(document))
    found = login(str(config))
    assert found.token is None
    assert found.info == kopf.ConnectionInfo(
        server="https://api:6443",
        ca_path=str(tmp_path / "ca.crt"),
        certificate_path=str(tmp_path / "c.crt"),
        private_key_data=b"KEY",
        username="ada",
        password=SECRET,
        default_namespace="team-a",
        proxy_url="http://proxy:3128",
    )
    assert Credentials(found).headers() == {
        "Authorization": "Basic " + b64(f"ada:{SECRET}".encode())
    }


# -- the shared reading ---------------------------------------------------------------------


def test_merged_kubeconfigs_take_the_first_of_each_name_and_paths_from_each_entrys_file(
    tmp_path: Path,
) -> None:
    first = tmp_path / "one" / "config"
    first.parent.mkdir()
    first.write_text(
        yaml.safe_dump(
            {
                "current-context": "dev",
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://first"}}],
            }
        )
    )
    second = tmp_path / "two" / "config"
    second.parent.mkdir()
    (second.parent / "token").write_text("from-two")
    second.write_text(
        yaml.safe_dump(
            {
                "current-context": "other",
                "clusters": [{"name": "c", "cluster": {"server": "https://second"}}],
                "users": [
                    {"name": "u", "user": {"tokenFile": "token", "client-certificate": "u.crt"}}
                ],
            }
        )
    )
    current = read_kubeconfig([first, second], program="a test")
    assert (current.name, current.server) == ("dev", "https://first")
    assert current.client_certificate == second.parent / "u.crt"
    assert current.token_file is not None
    assert current.token_file.path == second.parent / "token"
    assert current.token_file.get() == "from-two"


def good_kubeconfig() -> dict[str, Any]:
    """A usable kubeconfig whose user holds a token; each case below breaks one thing."""
    return {
        "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": "dev-user"}}],
        "clusters": [{"name": "dev", "cluster": {"server": "https://api:6443"}}],
        "users": [{"name": "dev-user", "user": {"token": SECRET}}],
    }


def context(document: dict[str, Any]) -> dict[str, Any]:
    return document["contexts"][0]["context"]  # type: ignore[no-any-return]


def cluster(document: dict[str, Any]) -> dict[str, Any]:
    return document["clusters"][0]["cluster"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(None, "cannot be read (No such file or directory)", id="missing"),
        pytest.param(
            f"users:\n- token: {SECRET}: x\n",
            "is not YAML (line 2, column 22: mapping values are not allowed here)",
            id="not-yaml",
        ),
        pytest.param("- a list", "is not a kubeconfig (no mapping at the top)", id="a-list"),
        pytest.param(lambda d: d.pop("current-context"), "no current-context", id="no-current"),
        pytest.param(
            lambda d: d.update({"current-context": "gone"}),
            "has no context entry named 'gone'",
            id="no-context",
        ),
        pytest.param(
            lambda d: context(d).update(cluster="gone"),
            "has no cluster entry named 'gone'",
            id="no-cluster",
        ),
        pytest.param(
            lambda d: context(d).update(user="gone"), "has no user entry named 'gone'", id="no-user"
        ),
        pytest.param(
            lambda d: cluster(d).update(server=""), "cluster 'dev' has no server", id="no-server"
        ),
        pytest.param(
            lambda d: d["users"][0].update(user={"tokenFile": "missing"}),
            "context 'dev': {dir}/missing cannot be read (No such file or directory)",
            id="no-token-file",
        ),
        pytest.param(
            lambda d: cluster(d).update({"certificate-authority-data": "abc"}),
            "context 'dev': certificate-authority-data is not base64",
            id="bad-ca-data",
        ),
    ],
)
def test_an_unusable_kubeconfig_says_why_naming_the_file_and_never_the_token(
    tmp_path: Path, change: str | Callable[[dict[str, Any]], Any] | None, reason: str
) -> None:
    path = tmp_path / "config"
    if isinstance(change, str):
        path.write_text(change)
    elif change is not None:
        document = good_kubeconfig()
        change(document)
        path.write_text(yaml.safe_dump(document))
    with pytest.raises(KubeconfigError) as raised:
        read_kubeconfig([path], program="a test")
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert reason.format(dir=tmp_path) in message
    assert SECRET not in message


def test_what_is_read_from_a_kubeconfig_shows_no_secret_in_its_repr(tmp_path: Path) -> None:
    user = {"token": SECRET, "client-key-data": b64(SECRET.encode()), "password": SECRET}
    config = write_kubeconfig(tmp_path / "config", "https://api:6443", user)
    current = read_kubeconfig([config], program="a test", unsupported=())
    assert current.token == SECRET
    assert SECRET not in repr(current)
    assert SECRET not in repr(
        kubeconfig_credentials(
            write_kubeconfig(tmp_path / "other", "https://api:6443", {"token": SECRET})
        )
    )


@pytest.mark.parametrize(
    ("rewrite", "warning"),
    [
        (lambda path: path.unlink(), "cannot be read (No such file or directory)"),
        (lambda path: path.write_text(""), "is empty"),
    ],
    ids=["removed", "emptied"],
)
def test_a_token_file_that_cannot_be_read_again_keeps_the_token_and_names_only_the_file(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    rewrite: Callable[[Path], None],
    warning: str,
) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET)
    clock = Clock()
    token = TokenFile(path, clock=clock)
    rewrite(path)
    clock.now += 60
    with caplog.at_level(logging.WARNING):
        assert token.get() == SECRET
        assert token.refresh() is False
    assert caplog.messages == [f"keeping the current token: {path} {warning}"] * 2
    assert SECRET not in repr(token)
    path.write_text("next")
    assert token.get() == "next"  # a refresh that found nothing new: read again at once

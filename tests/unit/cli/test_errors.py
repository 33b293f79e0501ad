"""One-line errors and exit codes scripts can rely on; kubeconfig and API error translation."""

from __future__ import annotations

import http.server
import json
import threading
from unittest import mock

import pytest
import urllib3
from agentry_cli import kube
from agentry_cli.errors import Forbidden, NotFound, OperationFailed, Unreachable
from agentry_cli.timing import format_age, parse_duration
from kubernetes.client.exceptions import ApiException


def api_error(status, reason, body):
    error = ApiException(status=status, reason=reason)
    error.body = body if isinstance(body, str) else json.dumps(body)
    return error


@pytest.fixture
def offline_cluster():
    """A KubeCluster whose API objects are mocks: no network."""
    cluster = kube.KubeCluster(
        kube.client.ApiClient(kube.client.Configuration(host="https://10.0.0.1:6443")), "team-a"
    )
    cluster.custom = mock.Mock()
    return cluster


def test_an_unknown_agent_exits_3_with_one_line(kubectl_agent):
    result = kubectl_agent("status", "nope")

    assert result.code == 3
    assert result.err == 'error: Agent "nope" not found in namespace "team-a"\n'
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (Forbidden('agents.agentry.dev "demo" is forbidden: User "bob" cannot get'), 4),
        (Unreachable("cannot reach the Kubernetes API server at https://127.0.0.1:6443"), 5),
    ],
)
@pytest.mark.parametrize(
    "command", ["status", "health", "metrics", "logs", "start", "stop", "restart", "rotate-key"]
)
def test_every_command_turns_cluster_failures_into_one_line_and_its_exit_code(
    kubectl_agent, fake_cluster, failure, code, command
):
    fake_cluster.failure = failure

    result = kubectl_agent(command, "demo")

    assert result.code == code
    assert result.err == f"error: {failure.message}\n"


def test_an_unknown_option_is_a_usage_error_with_exit_2(kubectl_agent, capsys):
    with pytest.raises(SystemExit) as exit_info:
        kubectl_agent("status", "demo", "-o", "wide")

    assert exit_info.value.code == 2
    assert "invalid choice: 'wide'" in capsys.readouterr().err


def test_help_shows_examples(kubectl_agent, capsys):
    with pytest.raises(SystemExit):
        kubectl_agent("invoke", "--help")

    assert 'kubectl agent invoke support-bot --session s1 "what did I just say?"' in (
        capsys.readouterr().out
    )


def test_a_missing_agent_maps_to_not_found(offline_cluster):
    offline_cluster.custom.get_namespaced_custom_object.side_effect = api_error(
        404,
        "Not Found",
        {"kind": "Status", "reason": "NotFound", "details": {"name": "x", "kind": "agents"}},
    )

    with pytest.raises(NotFound, match=r'^Agent "x" not found in namespace "team-a"$'):
        offline_cluster.get_agent("team-a", "x")


def test_a_cluster_without_the_crd_says_to_install_it(offline_cluster):
    offline_cluster.custom.get_namespaced_custom_object.side_effect = api_error(
        404, "Not Found", "404 page not found"
    )

    with pytest.raises(NotFound, match=r"agents\.agentry\.dev is not served by this cluster"):
        offline_cluster.get_agent("team-a", "x")


def test_forbidden_relays_the_api_servers_reason(offline_cluster):
    message = 'agents.agentry.dev "x" is forbidden: User "bob" cannot get resource "agents"'
    offline_cluster.custom.get_namespaced_custom_object.side_effect = api_error(
        403, "Forbidden", {"kind": "Status", "message": message}
    )

    with pytest.raises(Forbidden, match="^" + message):
        offline_cluster.get_agent("team-a", "x")


def test_unauthorized_maps_to_forbidden(offline_cluster):
    offline_cluster.custom.get_namespaced_custom_object.side_effect = api_error(
        401, "Unauthorized", {"kind": "Status", "message": "Unauthorized"}
    )

    with pytest.raises(Forbidden, match=r"^unauthorized"):
        offline_cluster.get_agent("team-a", "x")


def test_a_conflict_is_an_operation_failure_with_the_status(offline_cluster):
    offline_cluster.custom.patch_namespaced_custom_object.side_effect = api_error(
        409, "Conflict", {"kind": "Status", "message": "the object has been modified"}
    )

    with pytest.raises(OperationFailed, match=r"^API server answered 409 Conflict: the object"):
        offline_cluster.patch_agent("team-a", "x", {})


def test_a_refused_connection_names_the_server(offline_cluster):
    refused = urllib3.exceptions.MaxRetryError(
        mock.Mock(),
        "/apis",
        reason=urllib3.exceptions.NewConnectionError(
            mock.Mock(), "Failed to establish a new connection: [Errno 111] Connection refused"
        ),
    )
    offline_cluster.custom.get_namespaced_custom_object.side_effect = refused

    with pytest.raises(Unreachable) as caught:
        offline_cluster.get_agent("team-a", "x")

    assert caught.value.message == (
        "cannot reach the Kubernetes API server at https://10.0.0.1:6443: "
        "[Errno 111] Connection refused"
    )


def test_no_kubeconfig_exits_5_with_a_hint(tmp_path):
    with pytest.raises(Unreachable, match=r"no Kubernetes configuration found at .*missing"):
        kube.connect(str(tmp_path / "missing"), None)


def kubeconfig(tmp_path):
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://10.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u, namespace: team-a}},"
        " {name: b, context: {cluster: c, user: u}}]\n"
    )
    return str(path)


def test_the_default_namespace_comes_from_the_chosen_context(tmp_path):
    path = kubeconfig(tmp_path)

    assert kube.connect(path, None).namespace == "team-a"
    assert kube.connect(path, "b").namespace == "default"


def test_an_unknown_context_is_named(tmp_path):
    with pytest.raises(Unreachable, match=r'^context "zzz" not found in the kubeconfig$'):
        kube.connect(kubeconfig(tmp_path), "zzz")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations_read_like_kubectls(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "1h 30m"])
def test_bad_durations_are_rejected(text):
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42, "42s"), (200, "3m20s"), (900, "15m"), (18240, "5h4m"), (90000, "1d1h"), (-3, "0s")],
)
def test_ages_print_like_kubectls(seconds, text):
    assert format_age(seconds) == text


def test_a_post_through_the_proxy_sends_a_chunked_body(tmp_path):
    """The API server's proxy can cut a quick answer to a Content-Length POST over
    HTTP/1.1 (golang/go#40747); a chunked body cannot be cut that way."""
    seen: dict[str, object] = {}

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen["headers"] = dict(self.headers.items())
            seen["path"] = self.path
            if self.headers.get("Transfer-Encoding") == "chunked":
                seen["body"] = read_chunked(self.rfile)
            else:
                seen["body"] = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = b'{"turn": 1}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        cluster = kube.KubeCluster(kube.client.ApiClient(kube.client.Configuration(host)), "a")
        reply = cluster.post_through_proxy(
            "team-a", "services/bot", "http", "/v1/sessions/s/messages", {"content": "hi"}, {}
        )
        cluster.api.close()
    finally:
        server.shutdown()
        server.server_close()

    assert (reply.status, json.loads(reply.body)) == (200, {"turn": 1})
    proxy = "/api/v1/namespaces/team-a/services/bot:http/proxy"
    assert seen["path"] == f"{proxy}/v1/sessions/s/messages"
    headers = {k.lower(): v for k, v in seen["headers"].items()}  # type: ignore[attr-defined]
    assert headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in headers
    assert json.loads(seen["body"]) == {"content": "hi"}  # type: ignore[arg-type]


def read_chunked(stream) -> bytes:
    body = b""
    while size := int(stream.readline().split(b";")[0], 16):
        body += stream.read(size)
        stream.readline()
    stream.readline()
    return body

"""`kubectl agent invoke`: a message through the service proxy, the reply printed."""

from __future__ import annotations

import json

from agentry_cli.cluster import HttpReply, StreamReply
from agentry_cli.errors import Unreachable


def reply(status=200, body=None, reason="OK", headers=None):
    payload = json.dumps(body if body is not None else {}).encode()
    return HttpReply(status=status, reason=reason, body=payload, headers=headers or {})


def test_invoke_posts_the_message_to_the_agents_service_port_http(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply(body={"reply": "hello!", "degraded": False, "turn": 1}))

    result = kubectl_agent("invoke", "demo", "--session", "s1", "hi there")

    assert result.code == 0
    assert result.out == "hello!\n"
    # The fixture Agent has two replicas: any of them serves the session, so the Service.
    assert fake_cluster.posts == [
        ("services/demo", "http", "v1/sessions/s1/messages", {"content": "hi there"}, {})
    ]
    assert "(session s1, turn 1; continue with --session s1)" in result.err


def test_a_degraded_reply_is_marked(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(
        reply(body={"reply": "I can't reach the model.", "degraded": True, "turn": 2})
    )

    result = kubectl_agent("invoke", "demo", "hi")

    assert result.out == "[degraded] I can't reach the model.\n"


def test_without_session_a_new_one_is_made_and_shown(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply(body={"reply": "x", "degraded": False, "turn": 1}))

    document = json.loads(kubectl_agent("invoke", "demo", "hi", "-o", "json").out)

    assert document["session"].startswith("cli-")
    assert fake_cluster.posts[0][2] == f"v1/sessions/{document['session']}/messages"
    assert document == {"session": document["session"], "reply": "x", "degraded": False, "turn": 1}


def test_session_ids_are_escaped_in_the_path(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply(body={"reply": "x", "turn": 1}))

    kubectl_agent("invoke", "demo", "--session", "a/b c", "hi")

    assert fake_cluster.posts[0][2] == "v1/sessions/a%2Fb%20c/messages"


def test_the_client_id_goes_in_the_x_client_id_header(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(reply(body={"reply": "x", "turn": 1}))

    kubectl_agent("invoke", "demo", "--client-id", "team-a", "hi")

    assert fake_cluster.posts[0][4] == {"X-Client-ID": "team-a"}


def test_a_token_file_sends_the_token_in_the_header_the_api_server_proxy_keeps(
    kubectl_agent, fake_cluster, tmp_path
):
    fake_cluster.replies.append(reply(body={"reply": "x", "turn": 1}))
    token_file = tmp_path / "token"
    token_file.write_text("tok-alice-123\n")

    kubectl_agent("invoke", "demo", "--token-file", str(token_file), "hi")

    assert fake_cluster.posts[0][4] == {"X-Agentry-Authorization": "Bearer tok-alice-123"}


def test_a_token_file_without_exactly_one_token_is_a_usage_error(
    kubectl_agent, fake_cluster, tmp_path
):
    token_file = tmp_path / "tokens"
    token_file.write_text("alice:tok-alice-123\nbob:tok-bob-456\n")

    result = kubectl_agent("invoke", "demo", "--token-file", str(token_file), "hi")

    assert result.code == 2
    assert "exactly one token" in result.err
    assert "tok-alice" not in result.err
    assert fake_cluster.posts == []


def test_an_http_error_exits_1_with_the_status_and_retry_after(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(
        reply(
            429,
            {"error": {"code": "rate_limited", "message": "rate limit exceeded"}},
            "Too Many Requests",
            {"Retry-After": "3"},
        )
    )

    result = kubectl_agent("invoke", "demo", "hi")

    assert result.code == 1
    assert result.err == (
        "error: invoke failed: HTTP 429 Too Many Requests: rate limit exceeded (rate_limited) "
        "(retry after 3s)\n"
    )
    assert result.out == ""


def test_no_ready_pod_behind_the_service_is_reported_from_the_proxy(kubectl_agent, fake_cluster):
    status = {
        "kind": "Status",
        "status": "Failure",
        "code": 503,
        "message": 'no endpoints available for service "demo:http"',
    }
    fake_cluster.replies.append(reply(503, status, "Service Unavailable"))

    result = kubectl_agent("invoke", "demo", "hi")

    assert result.code == 1
    assert 'HTTP 503 Service Unavailable: no endpoints available for service "demo:http"' in (
        result.err
    )


def test_a_proxy_refusal_by_rbac_exits_as_forbidden(kubectl_agent, fake_cluster):
    status = {
        "kind": "Status",
        "code": 403,
        "message": 'services "demo:http" is forbidden: cannot create services/proxy',
    }
    fake_cluster.replies.append(reply(403, status, "Forbidden"))

    assert kubectl_agent("invoke", "demo", "hi").code == 4


def test_invoke_of_an_unknown_agent_does_not_send_anything(kubectl_agent, fake_cluster):
    result = kubectl_agent("invoke", "nope", "hi")

    assert result.code == 3
    assert result.err == 'error: Agent "nope" not found in namespace "team-a"\n'
    assert fake_cluster.posts == []


def test_every_session_goes_through_the_service_whatever_the_replica_count(
    kubectl_agent, fake_cluster
):
    for replicas in (1, 3):
        fake_cluster.agents["demo"]["spec"]["replicas"] = replicas
        for session in ("a", "b", "c"):
            fake_cluster.replies.append(reply(body={"reply": "x", "turn": 1}))
            kubectl_agent("invoke", "demo", "--session", session, "hi")
    assert {(post[0], post[1]) for post in fake_cluster.posts} == {("services/demo", "http")}


def sse(*events: tuple[str, dict]) -> HttpReply:
    text = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events)
    headers = {"Content-Type": "text/event-stream"}
    return HttpReply(status=200, reason="OK", body=text.encode(), headers=headers)


def test_stream_prints_the_pieces_as_they_come_and_asks_for_events(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(
        sse(
            ("delta", {"delta": "Hello ", "degraded": False}),
            ("delta", {"delta": "again", "degraded": False}),
            ("done", {"reply": "Hello again", "degraded": False, "turn": 2}),
        )
    )

    result = kubectl_agent("invoke", "demo", "--session", "s1", "--stream", "hi")

    assert result.code == 0
    assert result.out == "Hello again\n"
    assert fake_cluster.posts[0][2] == "v1/sessions/s1/messages?stream=true"
    assert "(session s1, turn 2; continue with --session s1)" in result.err


def test_a_stream_cut_by_an_error_event_fails_and_says_nothing_was_stored(
    kubectl_agent, fake_cluster
):
    fake_cluster.replies.append(
        sse(
            ("delta", {"delta": "Hel", "degraded": False}),
            ("error", {"error": {"code": "model_stream_broken", "message": "model stopped"}}),
        )
    )

    result = kubectl_agent("invoke", "demo", "--stream", "hi")

    assert result.code != 0
    assert "model stopped (model_stream_broken)" in result.err
    assert "nothing was stored" in result.err


def test_stream_with_an_http_error_before_the_first_piece_reports_it(kubectl_agent, fake_cluster):
    fake_cluster.replies.append(
        reply(429, {"error": {"code": "rate_limited", "message": "slow down"}}, "Too Many")
    )

    result = kubectl_agent("invoke", "demo", "--stream", "hi")

    assert result.code != 0
    assert "HTTP 429" in result.err
    assert "slow down" in result.err


def test_a_stream_broken_in_transit_after_the_first_words_says_the_turn_may_not_be_stored(
    kubectl_agent, fake_cluster, monkeypatch
):
    def lines():
        yield b"event: delta\n"
        yield b'data: {"delta": "Hel", "degraded": false}\n'
        yield b"\n"
        raise Unreachable("cannot reach the Kubernetes API server at X: Response ended prematurely")

    def stream(*args, **kwargs):
        return StreamReply(200, "OK", {"Content-Type": "text/event-stream"}, lines())

    monkeypatch.setattr(fake_cluster, "stream_through_proxy", stream)

    result = kubectl_agent("invoke", "demo", "--stream", "hi")

    assert result.code != 0
    assert result.out == "Hel\n"
    assert "Response ended prematurely" in result.err
    assert "the turn may not be stored" in result.err

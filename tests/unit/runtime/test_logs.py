"""Logs: JSON, one object per line, with request id, agent and replica, and no secrets;
written off the request's path without losing a line.

The scenario uses a model API key, bearer tokens, a key ring and distinctive message
contents, drives successes, failures (401, model errors, degraded replies, 404) and a
shutdown at debug level, then asserts that none of those values appears in any line.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from pathlib import Path

from agent_runtime.crypto import KeyRing
from agent_runtime.logs import JsonFormatter, LineWriter, log_access, request_id_var
from tests.support.fake_provider import FakeProvider, openai_settings
from tests.support.runtime import MakeClient


async def test_no_key_token_or_message_content_ever_reaches_a_log_line(
    make_client: MakeClient, keyring: KeyRing, tmp_path: Path, log_stream: io.StringIO
) -> None:
    api_key = "sk-test-valid"
    key_file = tmp_path / "api-key"
    key_file.write_text(api_key)
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:bearer-SEKRIT-alice\n")
    encryption_keys = [
        (tmp_path / "keys" / name).read_text().strip()
        for name in sorted(p.name for p in (tmp_path / "keys").glob("key.*"))
    ]
    raw_keys = [base64.b64decode(k) for k in encryption_keys]
    contents = ["purple-elephant-7781", "tangerine-submarine-4410"]
    auth = {"Authorization": "Bearer bearer-SEKRIT-alice"}
    async with FakeProvider(valid_keys={api_key}) as fake:
        client = await make_client(
            overrides=openai_settings(
                fake,
                key_file,
                auth_tokens_file=tokens,
                model_max_retries=1,
                circuit_failure_threshold=2,
            )
        )
        await client.post("/v1/sessions/s/messages", json={"content": contents[0]}, headers=auth)
        await client.post(
            "/v1/sessions/s/messages",
            json={"content": contents[1]},
            headers={"Authorization": "Bearer bearer-SEKRIT-wrong"},
        )
        fake.fail(10, 500)
        for content in contents:
            await client.post("/v1/sessions/s/messages", json={"content": content}, headers=auth)
        await client.get("/v1/sessions/s", headers=auth)
        await client.get("/v1/sessions/nope", headers=auth)
        await client.post("/v1/sessions/s/messages", data=b'{"content": ' + b"purple", headers=auth)
        await client.get("/readyz?verbose")
        await client.close()
    output = log_stream.getvalue()
    lines = output.splitlines()
    assert len(lines) > 10
    records = [json.loads(line) for line in lines]
    assert all(r["agent"] == "demo" and r["replica"] == "demo-0" for r in records)
    access = [r for r in records if r["message"] == "request"]
    assert access
    assert all(len(r["request_id"]) == 32 for r in access)
    assert any(r["message"] == "model call failed; using fallback" for r in records)
    forbidden = [api_key, "SEKRIT", *contents, "purple", *encryption_keys]
    for secret in forbidden:
        assert secret not in output, secret
    for raw in raw_keys:
        assert raw.hex() not in output


async def test_the_access_line_is_the_line_logging_writes_for_the_same_request(
    log_stream: io.StringIO,
) -> None:
    """The preformatted access line and the record ``logging`` formats (what any other
    set-up of handlers, such as a test's log capture, gets) are the same JSON, key order
    included; only the time differs."""
    token = request_id_var.set("req-1.a_b")
    try:
        log_access("req-1.a_b", "POST", '/v1/"odd"\\route', 201, 0.0038249)
        extra = logging.NullHandler()
        logging.root.addHandler(extra)  # a second handler: the record goes through logging
        try:
            log_access("req-1.a_b", "POST", '/v1/"odd"\\route', 201, 0.0038249)
        finally:
            logging.root.removeHandler(extra)
    finally:
        request_id_var.reset(token)
    preformatted, formatted = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert list(preformatted) == list(formatted)
    del preformatted["time"], formatted["time"]
    assert preformatted == formatted
    assert formatted["route"] == '/v1/"odd"\\route'
    assert formatted["duration_ms"] == 3.82


def test_a_stalled_log_stream_delays_lines_but_never_the_logger_and_loses_none() -> None:
    """A full pipe to the container runtime blocks the write; logging calls still return
    at once, and every line comes out, in order, once the stream drains."""
    released = threading.Event()

    class StalledStream(io.StringIO):
        def write(self, text: str) -> int:
            released.wait(10)
            return super().write(text)

    stream = StalledStream()
    writer = LineWriter(stream, JsonFormatter("demo", "demo-0"))
    started = time.monotonic()
    for i in range(20_000):
        writer.put(f"line {i}")
    assert time.monotonic() - started < 2  # nothing waited for the stream
    released.set()
    writer.flush()
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(20_000)]
    writer.close()


def test_closing_the_writer_writes_every_line_still_queued() -> None:
    """``logging.shutdown`` (at exit) closes the handler: queued lines are not lost."""
    stream = io.StringIO()
    writer = LineWriter(stream, JsonFormatter("demo", "demo-0"))
    for i in range(5_000):
        writer.put(f"line {i}")
    writer.close()
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(5_000)]

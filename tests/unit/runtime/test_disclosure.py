"""What the HTTP server layer reveals (issue 16, items 10 and 16).

Checks: a bearer token in an `Authorization` header over aiohttp's 8,190-byte line limit
is answered 400 and logged by error type and sizes only, never by its bytes; responses
name the server `agentry`, without Python's or aiohttp's version.
"""

from __future__ import annotations

import asyncio
import io
import json

from tests.support.runtime import MakeClient


async def test_an_oversized_authorization_header_is_logged_by_type_and_size_only(
    make_client: MakeClient, log_stream: io.StringIO
) -> None:
    client = await make_client()
    token = "tok-" + "LEAKME" * 2_000  # 12 KB: over aiohttp's 8,190-byte header line limit
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    request = f"GET /v1/sessions/s HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {token}\r\n\r\n"
    writer.write(request.encode())
    status_line = await reader.readline()
    writer.close()
    assert b" 400 " in status_line
    output = log_stream.getvalue()
    assert "LEAKME" not in output
    parse_errors = [
        record
        for record in map(json.loads, output.splitlines())
        if record["logger"] == "aiohttp.server"
    ]
    assert [(r["error_type"], r["limit_bytes"]) for r in parse_errors] == [("LineTooLong", 8190)]


async def test_responses_name_the_server_without_a_version(make_client: MakeClient) -> None:
    client = await make_client()
    for response in (
        await client.get("/livez"),
        await client.get("/v1/sessions/none"),
        await client.get("/no/such/route"),
        await client.post("/v1/sessions/s/messages", json={"content": "hi"}),
    ):
        assert response.headers["Server"] == "agentry"

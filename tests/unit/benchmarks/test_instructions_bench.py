"""The instruction-count benchmark's in-process requests reach the handler and get 200.

Valgrind is not needed here: the requests the benchmark counts under callgrind are made
and handled the same way without it.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from benchmarks import instructions


async def test_the_counted_requests_are_handled_like_wrks() -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.match_info["id"])
        return await instructions._bare_handler(request)

    app, cleanup = await instructions._bare_app(record)
    await instructions._serve(app, 0, 2 * instructions.BATCH, lambda: None)
    await cleanup()
    assert seen[:3] == ["s1", "s2", "s3"]
    assert len(seen) == 2 * instructions.BATCH


async def test_a_request_that_is_not_answered_with_200_stops_the_count() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "no"}, status=400)

    app, cleanup = await instructions._bare_app(refuse)
    with pytest.raises(RuntimeError, match="got 400"):
        await instructions._handle(app, instructions._request(app, 1))
    await cleanup()


def test_the_report_gives_the_ratio_of_the_two_counts() -> None:
    text = instructions.render({"runtime": 400_000, "bare": 100_000}, 640)
    assert "| runtime / bare | 4.00 |" in text
    assert "| runtime (production settings) | 400,000 |" in text

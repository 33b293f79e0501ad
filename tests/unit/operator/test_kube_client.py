"""What the operator's client logs: at debug, neither the token it sends nor what it reads
(a Secret's data). How it logs in (service account, kubeconfig, rotated tokens, refused
plugins) is checked with the runtime's, in tests/unit/runtime/test_kubecredentials.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from agentry_operator.kube import Kube
from aiohttp import web
from aiohttp.test_utils import TestServer

SECRET_VALUE = "c2VjcmV0LWtleS1tYXRlcmlhbA=="
TOKEN = "t0ken"


@pytest.fixture
def debug_logs() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    yield
    root.setLevel(level)


async def secret(request: web.Request) -> web.Response:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    return web.json_response({"kind": "Secret", "data": {"key": SECRET_VALUE}})


@pytest.mark.usefixtures("debug_logs")
async def test_at_debug_nothing_logs_what_the_client_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/secrets/key", secret)
    async with TestServer(app, host="127.0.0.1") as server:
        config = tmp_path / "config"
        config.write_text(
            yaml.safe_dump(
                {
                    "current-context": "x",
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "ada"}}],
                    "clusters": [{"name": "c", "cluster": {"server": str(server.make_url(""))}}],
                    "users": [{"name": "ada", "user": {"token": TOKEN}}],
                }
            )
        )
        kube = await Kube.connect(str(config))
        with caplog.at_level(logging.DEBUG):
            found = await kube.get("Secret", "ns", "key")
        await kube.close()
    assert found is not None
    assert found["data"]["key"] == SECRET_VALUE
    assert SECRET_VALUE not in caplog.text
    assert TOKEN not in caplog.text

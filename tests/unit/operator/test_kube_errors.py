"""What an API refusal says in the operator's log and in a handler's retry message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import kopf
import pytest
from agentry_operator.credentials import Credentials, Login
from agentry_operator.kube import Kube, KubeError
from aiohttp import web
from aiohttp.test_utils import TestServer

REFUSAL = (
    'serviceaccounts "ada" is forbidden: cannot set blockOwnerDeletion in this case because '
    "cannot find RESTMapping for APIVersion agentry.dev/v1alpha1 Kind Agent"
)


async def refuse(request: web.Request) -> web.Response:
    if request.path.endswith("/plain"):
        return web.Response(status=403, text="no JSON here")
    status = {"kind": "Status", "status": "Failure", "message": REFUSAL, "code": 403}
    return web.json_response(status, status=403)


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    async with TestServer(app) as server:
        kube = Kube(Credentials(Login(kopf.ConnectionInfo(server=str(server.make_url(""))))))
        yield kube
        await kube.close()


async def test_a_refusal_carries_the_api_servers_reason(kube: Kube) -> None:
    with pytest.raises(KubeError) as caught:
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "ada", "namespace": "ns"},
            }
        )
    assert caught.value.status == 403
    assert (
        str(caught.value) == f"POST /api/v1/namespaces/ns/serviceaccounts: 403 Forbidden: {REFUSAL}"
    )


async def test_a_refusal_without_a_status_body_still_names_the_call(kube: Kube) -> None:
    with pytest.raises(KubeError, match=r"^GET /plain: 403 Forbidden$"):
        await kube._call("GET", "/plain")


def test_a_refusal_in_a_namespace_being_deleted_is_told_apart() -> None:
    going = KubeError(
        'POST /api/v1/namespaces/ns/services: 403 Forbidden: services "ada" is forbidden: '
        "unable to create new content in namespace ns because it is being terminated",
        403,
    )
    assert going.namespace_terminating
    assert not KubeError(f"POST /x: 403 Forbidden: {REFUSAL}", 403).namespace_terminating

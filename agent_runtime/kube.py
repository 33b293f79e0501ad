"""The Kubernetes API client for the runtime (configmap state backend, heartbeat Lease).

In a pod (``KUBERNETES_SERVICE_HOST`` set) the service account token is used; elsewhere
the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``), for running the runtime against a
development cluster. The client library is imported only when a client is made: a
runtime with neither backend nor heartbeat in the API server never loads it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes_asyncio import client

REQUEST_TIMEOUT_SECONDS = 10.0
"""One API call's deadline, for every call the runtime makes. The client sets none, so
with the API server cut off (packets dropped, not refused) a call waited on TCP
retransmissions for many minutes."""


async def api_client_from_environment() -> client.ApiClient:
    from kubernetes_asyncio import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    configuration = client.Configuration()
    await config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)

"""The Kubernetes API client for the runtime (configmap state backend, heartbeat Lease).

In a pod (``KUBERNETES_SERVICE_HOST`` set) the service account token is used; elsewhere
the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``), for running the runtime against a
development cluster.
"""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config


async def api_client_from_environment() -> client.ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    configuration = client.Configuration()
    await config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)

"""The runtime's Kubernetes API client in the process: importing the runtime loads no
Kubernetes client library and not kopf (the shared credentials module must stay free of
them too), a runtime with neither the heartbeat nor the configmap backend makes no
client, and one with both gets a client each, which closing the store and the publisher
closes. Its credentials are checked in test_kubecredentials.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import lifecycle
from agent_runtime.crypto import KeyRing
from agent_runtime.kubeapi import KubeClient
from tests.support.runtime import make_settings


def test_importing_the_runtime_loads_no_kubernetes_client_library_nor_kopf() -> None:
    probe = (
        "import agent_runtime.app, agent_runtime.cli, agent_runtime.lifecycle, sys; "
        "import agent_runtime.kubecredentials; "
        "print([m for m in sys.modules if m.startswith(('kubernetes', 'kopf'))])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


class RecordedClient(KubeClient):
    """A client that notes when it is closed."""

    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def test_a_runtime_without_heartbeat_or_configmap_backend_makes_no_client(
    tmp_path: Path, keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[RecordedClient] = []

    def making(*args: Any, **kwargs: Any) -> KubeClient:
        made.append(RecordedClient.for_url("http://127.0.0.1:1"))
        return made[-1]

    monkeypatch.setattr(lifecycle, "client_from_environment", making)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    for backend in ("memory", "pvc"):
        settings = make_settings(tmp_path, state_backend=backend, heartbeat="none")
        await lifecycle.build_publisher(settings)
        await lifecycle.build_any_store(settings, keyring)
    assert made == []

    settings = make_settings(tmp_path, state_backend="configmap", heartbeat="auto")
    publisher = await lifecycle.build_publisher(settings)
    store = await lifecycle.build_any_store(settings, keyring)
    assert store is not None
    assert len(made) == 2
    await publisher.close()
    await store.close()
    assert [client.closed for client in made] == [True, True]

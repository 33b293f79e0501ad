"""A kubeconfig file for tests: one cluster, one user, and a current context naming them
(plus a context naming neither, which must not be the one used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_kubeconfig(
    path: Path, server: str, user: dict[str, Any], cluster: dict[str, Any] | None = None
) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "dev-user", "user": user}],
        "contexts": [
            {"name": "other", "context": {"cluster": "missing", "user": "missing"}},
            {"name": "dev", "context": {"cluster": "dev", "user": "dev-user"}},
        ],
        "current-context": "dev",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path

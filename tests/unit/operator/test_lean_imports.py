"""The operator process carries neither Kubernetes client library (kopf would import
their models at startup: about 26 MB of RSS for the synchronous one, 40 MB for
kubernetes_asyncio, which the operator's own client no longer uses either)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agentry_operator.lean_imports import hidden


def test_the_operator_starts_without_either_client_library() -> None:
    code = (
        "import sys, agentry_operator.cli\n"
        "assert 'kopf' in sys.modules\n"
        "import agentry_operator.handlers, agentry_operator.kube\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_a_hidden_package_is_refused_then_imports_again() -> None:
    sys.modules.pop("colorsys", None)
    with hidden("colorsys"), pytest.raises(ImportError):
        import colorsys
    import colorsys

    assert colorsys.rgb_to_hsv(1, 0, 0) == (0, 1, 1)

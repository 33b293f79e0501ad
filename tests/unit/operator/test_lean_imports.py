"""The operator process does not carry the synchronous kubernetes client (kopf would
import its models at startup; about 26 MB of RSS the operator never uses)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agentry_operator.lean_imports import hidden


def test_the_operator_starts_without_the_synchronous_client() -> None:
    code = (
        "import sys, agentry_operator.cli\n"
        "assert 'kopf' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
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

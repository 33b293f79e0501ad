"""Plain-text tables and the -o json|yaml renderings.

Tables are aligned columns separated by three spaces with upper-case headers, like
`kubectl get`, so they read the same as the rest of a Kubernetes terminal session.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

OUTPUT_FORMATS = ("table", "json", "yaml")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Align `rows` under `headers`; cells are str()-ed, None prints as '-'."""
    cells = [[cell_text(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *cells]:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    """`Label:  value` lines with the values aligned, like `kubectl describe`."""
    width = max((len(label) for label, _ in pairs), default=0) + 1
    return "\n".join(f"{(label + ':').ljust(width)}  {cell_text(value)}" for label, value in pairs)


def cell_text(value: object) -> str:
    """How one value prints in a table: '-' for unknown, trimmed floats, yes/no for bools."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def percent(ratio: float | None) -> str | None:
    """A ratio 0..1 as a percentage with one decimal, or None."""
    if ratio is None:
        return None
    return f"{ratio * 100:.1f}%"


def millis(value: float | None) -> str | None:
    """A latency in milliseconds with its unit, or None."""
    if value is None:
        return None
    return f"{value:.1f}ms"


def render(document: Mapping[str, Any] | Sequence[Any], output: str) -> str:
    """A document as JSON (indented) or YAML (block style, keys in insertion order)."""
    if output == "json":
        return json.dumps(document, indent=2, sort_keys=False)
    if output == "yaml":
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip("\n")
    raise ValueError(f"no renderer for output {output!r}")

"""`kubectl auth can-i --list` as data, for the e2e tests that pin the operator's RBAC.

Each row of kubectl's table becomes (resource, non-resource URLs, resource names, verbs),
with the verbs sorted; rows are sorted so two tables compare as lists (kubectl repeats some
non-resource rows, and a repeated row counts).
"""

from __future__ import annotations

import re
from typing import Any

Row = tuple[str, str, str, tuple[str, ...]]
_ROW = re.compile(r"^(\S*)\s+(\[[^\]]*\])\s+(\[[^\]]*\])\s+\[([^\]]*)\]\s*$")


def parse(table: str) -> list[Row]:
    """The rows of a `kubectl auth can-i --list` table (its header left out)."""
    rows: list[Row] = []
    for line in table.splitlines():
        if not line.strip() or line.startswith("Resources"):
            continue
        match = _ROW.match(line)
        if match is None:
            raise ValueError(f"not a can-i row: {line!r}")
        resource, urls, names, verbs = match.groups()
        rows.append((resource, urls, names, tuple(sorted(verbs.split()))))
    return sorted(rows)


def can_i_list(cluster: Any, service_account: str, namespace: str) -> list[Row]:
    """What `service_account` ("ns:name") may do in `namespace`, cluster-wide rules included."""
    out = cluster.kubectl(
        "auth",
        "can-i",
        "--list",
        f"--as=system:serviceaccount:{service_account}",
        "-n",
        namespace,
    )
    return parse(out.stdout)


def can_i(cluster: Any, service_account: str, *question: str) -> bool:
    """`kubectl auth can-i VERB RESOURCE ...` for the service account: yes or no."""
    out = cluster.kubectl(
        "auth", "can-i", *question, f"--as=system:serviceaccount:{service_account}", check=False
    )
    return out.stdout.strip() == "yes"

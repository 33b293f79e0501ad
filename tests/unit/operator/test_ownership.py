"""Which existing objects an Agent may write (`agentry_operator.ownership.claim`).

Checks: its own controller reference is "controlled"; another controller (even an older
Agent of the same name) is "foreign"; what a finalizer left behind (no controller, the
retained label and the Agent's label) is "left-behind"; a name alone, or the retained
label without the Agent's, is "foreign"; the guard raises with kind, name and holder.
"""

from __future__ import annotations

from typing import Any

import pytest
from agentry_operator.ownership import NameConflict, claim, guard_for


def obj(labels: dict[str, str] | None = None, owner_uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "labels": labels or {}}
    if owner_uid:
        meta["ownerReferences"] = [
            {"kind": "Agent", "name": "web", "uid": owner_uid, "controller": True}
        ]
    return {"metadata": meta}


LEFT = {"agentry.dev/retained": "true", "agentry.dev/agent": "web"}


@pytest.mark.parametrize(
    ("thing", "expected"),
    [
        (obj(owner_uid="u1"), "controlled"),
        (obj(owner_uid="u0"), "foreign"),
        (obj(LEFT), "left-behind"),
        (obj(LEFT, owner_uid="u0"), "foreign"),
        (obj({"agentry.dev/retained": "true"}), "foreign"),
        (obj({"agentry.dev/retained": "true", "agentry.dev/agent": "other"}), "foreign"),
        (obj({"agentry.dev/agent": "web"}), "foreign"),
        (obj(), "foreign"),
    ],
)
def test_claim(thing: dict[str, Any], expected: str) -> None:
    assert claim(thing, "web", "u1") == expected


def test_the_guard_names_the_object_and_its_holder() -> None:
    guard = guard_for("web", "u1")
    guard("Role", obj(owner_uid="u1"))
    with pytest.raises(NameConflict, match=r"Role/web \(controlled by Agent/web\)"):
        guard("Role", obj(owner_uid="u0"))

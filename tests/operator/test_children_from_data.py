"""Data-driven: each tests/operator/data/<case>/agent.yaml becomes exactly children.yaml.

The operator runs in-process against kmock; the test applies `existing.yaml` (if any)
and the Agent, waits for the children, and compares them with the expected YAML after
normalising the random key material. Regenerate the expected files after an intended
change with `AGENTRY_REGEN_GOLDEN=1 pytest tests/operator` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DATA = Path(__file__).parent / "data"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "agent.yaml").exists())

CHILDREN = [
    ("v1/serviceaccounts", "ServiceAccount", ""),
    ("rbac.authorization.k8s.io/v1/roles", "Role", ""),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", ""),
    ("v1/secrets", "Secret", "-keys"),
    ("v1/configmaps", "ConfigMap", "-config"),
    ("v1/configmaps", "ConfigMap", "-profile"),
    ("v1/configmaps", "ConfigMap", "-limits"),
    ("v1/services", "Service", "-pods"),
    ("networking.k8s.io/v1/networkpolicies", "NetworkPolicy", ""),
    ("apps/v1/statefulsets", "StatefulSet", ""),
    ("v1/services", "Service", ""),
    ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget", ""),
]
RESOURCE_OF = {
    "Secret": "v1/secrets",
    "ConfigMap": "v1/configmaps",
}


RANDOM_ID = re.compile(r"k-[0-9a-f]{8}")


def _normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """Replace what is random in a generated key ring: the bytes, the id, and the hash and
    annotations of the StatefulSet that follow from the id."""
    if obj.get("kind") == "Secret":
        data = obj.get("stringData") or {}
        for key in list(data):
            if key.startswith("key."):
                assert len(data[key]) == 44, "a key is base64 of 32 bytes"
                del data[key]
                data[RANDOM_ID.sub("<random id>", key)] = "<32 random bytes, base64>"
            else:
                data[key] = RANDOM_ID.sub("<random id>", data[key])
    if obj.get("kind") == "StatefulSet":
        notes = obj["spec"]["template"]["metadata"].get("annotations") or {}
        for key in list(notes):
            notes[key] = RANDOM_ID.sub("<random id>", notes[key])
        if "agentry.dev/config-hash" in notes:
            assert re.fullmatch(r"[0-9a-f]{64}", notes["agentry.dev/config-hash"])
            notes["agentry.dev/config-hash"] = "<sha256 of config and key ids>"
    return obj


@pytest.mark.parametrize("case", CASES)
async def test_agent_yaml_becomes_the_expected_children(
    case: str, api: Any, operator: None, eventually: Any
) -> None:
    folder = DATA / case
    agent = yaml.safe_load((folder / "agent.yaml").read_text())
    existing = folder / "existing.yaml"
    if existing.exists():
        for obj in yaml.safe_load_all(existing.read_text()):
            await api.create(RESOURCE_OF[obj["kind"]], obj)
    await api.create("agentry.dev/v1alpha1/agents", agent)
    name, namespace = agent["metadata"]["name"], agent["metadata"]["namespace"]

    expected_file = folder / "children.yaml"
    regen = bool(os.environ.get("AGENTRY_REGEN_GOLDEN"))
    want_names = (
        []
        if regen
        else [
            (c["kind"], c["metadata"]["name"])
            for c in yaml.safe_load_all(expected_file.read_text())
        ]
    )

    def children() -> list[dict[str, Any]]:
        return [
            _normalise(obj)
            for resource, _, suffix in CHILDREN
            if (obj := api.get(resource, namespace, name + suffix)) is not None
        ]

    def settled() -> bool:
        status = (api.get("agentry.dev/v1alpha1/agents", namespace, name) or {}).get("status")
        got = [(c["kind"], c["metadata"]["name"]) for c in children()]
        service_made = ("Service", name) in got
        return bool(status) and service_made and (regen or got == want_names)

    assert await eventually(settled), "the operator created the children and a status"
    children_now = children()
    if regen:
        expected_file.write_text(
            f"# Expected children of {case}/agent.yaml (AGENTRY_REGEN_GOLDEN=1 rewrites).\n"
            + yaml.safe_dump_all(children_now, sort_keys=False, width=100)
        )
    expected = list(yaml.safe_load_all(expected_file.read_text()))
    assert [(c["kind"], c["metadata"]["name"]) for c in children_now] == [
        (c["kind"], c["metadata"]["name"]) for c in expected
    ]
    for got, want in zip(children_now, expected, strict=True):
        assert got == want, f"{got['kind']} {got['metadata']['name']} differs"

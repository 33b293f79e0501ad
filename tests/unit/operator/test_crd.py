"""The CRD: committed copies are current, and the schema carries the validation rules.

The API server itself enforcing these rules is tested in tests/e2e/test_crd_validation.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from agentry_operator import crd

ROOT = Path(__file__).resolve().parents[3]


def _schema() -> dict[str, Any]:
    version = crd.build_crd()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def _rules(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        found += [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        for value in node.values():
            found += _rules(value)
    elif isinstance(node, list):
        for value in node:
            found += _rules(value)
    return found


def test_the_committed_crd_files_match_what_the_models_generate() -> None:
    for path in crd.output_paths(ROOT):
        assert path.read_text() == crd.render(), f"{path} is stale: run `make crds`"


def test_the_crd_names_group_scope_and_short_name() -> None:
    spec = crd.build_crd()["spec"]
    assert spec["group"] == "agentry.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["agt"]
    assert spec["names"]["categories"] == ["agentry"]
    assert spec["versions"][0]["name"] == "v1alpha1"


def test_kubectl_scale_and_status_subresources_are_enabled() -> None:
    sub = crd.build_crd()["spec"]["versions"][0]["subresources"]
    assert sub["status"] == {}
    assert sub["scale"]["specReplicasPath"] == ".spec.replicas"
    assert sub["scale"]["labelSelectorPath"] == ".status.selector"


def test_kubectl_get_shows_the_printer_columns() -> None:
    columns = crd.build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert names == ["Ready", "Phase", "Requests", "Throttled", "Errors", "Checkpoint age", "Age"]
    checkpoint = columns[5]
    assert checkpoint == {
        "name": "Checkpoint age",
        "type": "date",
        "jsonPath": ".status.lastCheckpoint.time",
    }


def test_the_schema_rejects_bad_values_with_at_least_eight_rules() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert spec["replicas"]["minimum"] == 0
    assert spec["environment"]["enum"] == ["development", "staging", "production"]
    assert spec["state"]["properties"]["backend"]["enum"] == ["configmap", "pvc"]
    threshold = spec["alerting"]["properties"]["errorRateThreshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)
    rules = _rules(_schema())
    assert any("burst" in r and "requestsPerSecond" in r for r in rules)
    assert any("!has(self.pvc)" in r for r in rules)
    assert any("apiKeySecretRef" in r for r in rules)
    assert any("tokenSecretRef" in r for r in rules)
    assert any("metadata.name" in r for r in rules)
    assert len(rules) >= 5


def test_every_cel_rule_names_the_field_in_its_message() -> None:
    def walk(node: Any) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        if isinstance(node, dict):
            out += node.get("x-kubernetes-validations", [])
            for value in node.values():
                out += walk(value)
        return out

    for rule in walk(_schema()):
        assert "spec." in rule["message"] or "metadata." in rule["message"], rule


def test_defaults_fill_in_an_empty_spec() -> None:
    spec = _schema()["properties"]["spec"]
    assert spec["default"]["replicas"] == 1
    props = spec["properties"]
    assert props["replicas"]["default"] == 1
    # Complete objects, because the API server checks defaults against the CEL rules.
    assert props["rateLimit"]["default"]["burst"] == 0
    assert props["rateLimit"]["default"]["requestsPerSecond"] == 0
    assert props["state"]["properties"]["retainOnDelete"]["default"] is True


def test_fields_have_descriptions_from_the_model_docstrings() -> None:
    props = _schema()["properties"]["spec"]["properties"]
    assert "replica" in props["rateLimit"]["description"].lower()
    assert props["suspend"]["description"].startswith("Stop the agent")


def test_the_generated_yaml_is_a_valid_crd_document() -> None:
    text = crd.render()
    doc = yaml.safe_load(text)
    assert doc["kind"] == "CustomResourceDefinition"
    assert doc["metadata"]["name"] == "agents.agentry.dev"

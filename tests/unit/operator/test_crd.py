"""The CRD: committed copies are current, and the schema carries the validation rules.

Checks that every pydantic constraint of the models reaches the schema (exclusive bounds
included), the name, quantity, env and condition rules, the printer columns, and that
the YAML has no anchors. The API server itself enforcing these rules is tested in
tests/e2e/test_crd_validation.py.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types as at
import pytest
import yaml
from agentry_operator import crd
from agentry_operator.models import AgentSpec, AgentStatus
from pydantic import BaseModel, WithJsonSchema
from pydantic.fields import FieldInfo

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
    assert names == [
        "Ready",
        "Phase",
        "Tokens",
        "Requests",
        "Throttled",
        "Errors",
        "Checkpoint age",
        "Age",
    ]
    wide_only = [c["name"] for c in columns if c.get("priority") == 1]
    assert wide_only == ["Requests", "Throttled", "Errors"]  # plain `kubectl get` stays narrow
    assert columns[2]["jsonPath"] == ".status.metrics.tokens"  # tokens are what costs
    checkpoint = columns[6]
    assert checkpoint == {
        "name": "Checkpoint age",
        "type": "date",
        "jsonPath": ".status.lastCheckpoint.time",
    }


def test_the_schema_rejects_bad_values_with_at_least_eight_rules() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert spec["replicas"]["minimum"] == 0
    assert spec["environment"]["enum"] == ["development", "staging", "production"]
    assert spec["state"]["properties"]["backend"]["enum"] == ["configmap", "pvc", "postgres"]
    threshold = spec["alerting"]["properties"]["errorRateThreshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)
    rules = _rules(_schema())
    assert any("burst" in r and "requestsPerSecond" in r for r in rules)
    assert any("!has(self.pvc)" in r for r in rules)
    assert any("apiKeySecretRef" in r for r in rules)
    assert any("tokenSecretRef" in r for r in rules)
    assert any("metadata.name" in r for r in rules)
    assert len(rules) >= 5


# ---- every model constraint reaches the schema ---------------------------------------------


def _expected(meta: Any, node: dict[str, Any]) -> dict[str, Any]:
    """What one pydantic/annotated-types constraint must look like in the OpenAPI schema."""
    sized = "Items" if node.get("type") == "array" else "Length"
    if isinstance(meta, at.Gt):
        return {"minimum": meta.gt, "exclusiveMinimum": True}
    if isinstance(meta, at.Ge):
        return {"minimum": meta.ge}
    if isinstance(meta, at.Lt):
        return {"maximum": meta.lt, "exclusiveMaximum": True}
    if isinstance(meta, at.Le):
        return {"maximum": meta.le}
    if isinstance(meta, at.MinLen):
        return {f"min{sized}": meta.min_length}
    if isinstance(meta, at.MaxLen):
        return {f"max{sized}": meta.max_length}
    if isinstance(meta, at.MultipleOf):
        return {"multipleOf": meta.multiple_of}
    if getattr(meta, "pattern", None) is not None:
        return {"pattern": meta.pattern}
    raise AssertionError(f"a constraint this test does not know: {meta!r}")


def _constraints(annotation: Any, node: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    """(path, constraint) for every constraint inside `annotation`, against its schema node."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        for meta in metadata:
            if isinstance(meta, WithJsonSchema):
                continue  # a schema given whole (pass-through objects), not a constraint
            inner = meta.metadata if isinstance(meta, FieldInfo) else [meta]
            yield from ((where, (m, node)) for m in inner)
        yield from _constraints(base, node, where)
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _constraints(arg, node, where)
    elif origin is list:
        yield from _constraints(get_args(annotation)[0], node["items"], f"{where}[]")
    elif origin is dict and node.get("x-kubernetes-preserve-unknown-fields"):
        return  # passed through to the pod spec as given; the API server checks it there
    elif origin is dict:
        yield from _constraints(
            get_args(annotation)[1], node["additionalProperties"], f"{where}{{}}"
        )
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            alias = field.alias or name
            sub = node["properties"][alias]
            yield from ((f"{where}.{alias}", (m, sub)) for m in field.metadata)
            yield from _constraints(field.annotation, sub, f"{where}.{alias}")


def _all_constraints() -> list[tuple[str, Any, dict[str, Any]]]:
    props = _schema()["properties"]
    found = []
    for model, root in ((AgentSpec, "spec"), (AgentStatus, "status")):
        for where, (meta, node) in _constraints(model, props[root], root):
            found.append((where, meta, node))
    return found


def test_the_walk_finds_the_constraints_that_issue_18_named() -> None:
    """Guards the test below against passing because it found nothing."""
    where = {path: meta for path, meta, _ in _all_constraints()}
    assert isinstance(where["spec.rateLimit.perClientRequestsPerSecond"], at.Gt)
    assert "spec.resources.requests{}" in where
    assert len(where) > 20


@pytest.mark.parametrize(("where", "meta", "node"), _all_constraints(), ids=lambda v: str(v)[:60])
def test_every_model_constraint_appears_in_the_generated_schema(
    where: str, meta: Any, node: dict[str, Any]
) -> None:
    expected = _expected(meta, node)
    assert {key: node.get(key) for key in expected} == expected, where


# ---- rules issue 18 added ---------------------------------------------------------------------


def _spec_props() -> dict[str, Any]:
    return dict(_schema()["properties"]["spec"]["properties"])


def _name_rule_accepts(name: str) -> bool:
    """Evaluate the two metadata.name rules the way CEL would, for the names below."""
    rules = [r["rule"] for r in _schema()["x-kubernetes-validations"]]
    size = next(r for r in rules if "size()" in r)
    limit = int(size.rsplit("<=", 1)[1])
    pattern = next(r for r in rules if "matches(" in r).split("matches('", 1)[1].rsplit("')", 1)[0]
    return len(name) <= limit and re.search(pattern, name) is not None


@pytest.mark.parametrize(
    ("name", "ok"),
    [("web", True), ("a-1", True), ("1st", False), ("a.b", False), ("Web", False),
     ("end-", False), ("a" * 52, True), ("a" * 53, False)],
)  # fmt: skip
def test_the_name_must_be_a_dns_1035_label_short_enough_for_pod_labels(name: str, ok: bool) -> None:
    assert _name_rule_accepts(name) is ok


def test_resource_quantities_are_checked_by_the_quantity_pattern() -> None:
    requests = _spec_props()["resources"]["properties"]["requests"]["additionalProperties"]
    assert requests["x-kubernetes-int-or-string"] is True
    pattern = requests["pattern"]
    for good in ("100m", "128Mi", "1", "0.5", "1e3", "2Gi"):
        assert re.search(pattern, good), good
    for bad in ("lots", "1 Gi", "10MB", ""):
        assert not re.search(pattern, bad), bad


def test_env_is_a_map_by_name_that_refuses_the_operators_prefix() -> None:
    env = _spec_props()["env"]
    assert env["x-kubernetes-list-type"] == "map"
    assert env["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in env["items"]["required"]
    rule = env["items"]["x-kubernetes-validations"][0]
    assert "upperAscii().startsWith('AGENTRY_')" in rule["rule"]
    assert rule["fieldPath"] == ".name"


def test_conditions_are_a_map_by_type_with_timestamps_and_bounded_text() -> None:
    conditions = _schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]["properties"]
    assert item["lastTransitionTime"]["format"] == "date-time"
    assert item["reason"]["maxLength"] == 1024
    assert item["message"]["maxLength"] == 32768
    assert "type" in conditions["items"]["required"]


def test_client_key_token_without_auth_is_refused_and_has_no_default() -> None:
    spec = _schema()["properties"]["spec"]
    assert "default" not in spec["properties"]["rateLimit"]["properties"]["clientKey"]
    rule = next(r for r in spec["x-kubernetes-validations"] if "clientKey" in r["rule"])
    assert rule["fieldPath"] == ".rateLimit.clientKey"
    assert "spec.rateLimit.clientKey" in rule["message"]


def test_the_generated_yaml_has_no_anchors_or_aliases() -> None:
    text = crd.render()
    assert not re.search(r"[&*]id\d+", text)
    # The same default objects appear twice (on the field and in spec's default).
    assert text.count("checkpointIntervalSeconds: 30") >= 2


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

"""Generate the Agent CRD from the pydantic models, and write it where it is committed.

`python -m agentry_operator.crd --write` (what `make crds` runs) writes
crds/agents.agentry.dev.yaml and charts/agentry/crds/agents.agentry.dev.yaml;
without `--write` it prints the YAML. A unit test regenerates it and compares.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from agentry_operator import constants as c
from agentry_operator.models import AgentSpec, AgentStatus

# Keys of a pydantic JSON schema that a structural CRD schema understands.
_KEPT = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}

# The Agent's name becomes the StatefulSet's and the Service's. The StatefulSet controller
# labels each pod `controller-revision-hash: <name>-<hash of up to 10 characters>`, and a
# label value is at most 63 characters, so 52 is the longest name whose pods can be
# created. Pods `<name>-<ordinal>` (up to 55 here) and the Service (DNS-1035, at most 63)
# fit within it.
NAME_MAX = 52
DNS_1035_LABEL = "^[a-z]([-a-z0-9]*[a-z0-9])?$"

CRD_FILE = f"{c.CRD_NAME}.yaml"


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs, drop nulls from anyOf, and keep only structural-schema keys."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _resolve({**options[0], **rest}, defs)
        # str | int values (resource quantities): let the API server take either, and keep
        # the string branch's pattern (the pattern does not apply to integers).
        rest.pop("default", None)
        patterns = [o["pattern"] for o in options if o.get("type") == "string" and "pattern" in o]
        out = {**_resolve(rest, defs), "x-kubernetes-int-or-string": True}
        if patterns:
            out["pattern"] = patterns[0]
        return out
    out = {}
    for key, value in node.items():
        if key not in _KEPT:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        elif key == "default" and value is None:
            continue
        else:
            out[key] = copy.deepcopy(value)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)  # any keys: pydantic's `true` is not structural
    if out.get("type") == "integer" and "default" in out and isinstance(out["default"], float):
        out["default"] = int(out["default"])
    return _openapi_v3_bounds(out)


def _openapi_v3_bounds(node: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema's `exclusiveMinimum: 0` is OpenAPI v3's `minimum: 0` plus
    `exclusiveMinimum: true`; the CRD API accepts only the latter, and dropping the key would
    let `gt=0` fields take 0 (issue 18)."""
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        bound = node.get(exclusive)
        if isinstance(bound, bool) or bound is None:
            continue
        node[inclusive] = bound
        node[exclusive] = True
    return node


def _complete_defaults(node: Any) -> Any:
    """Replace `default: {}` with the object its properties' defaults make.

    The API server checks a default against the CEL rules without applying the nested
    defaults first, so `{}` would fail rules such as `self.burst >= ...`.
    """
    if isinstance(node, list):
        return [_complete_defaults(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _complete_defaults(value) for key, value in node.items()}
    if out.get("default") == {} and "properties" in out:
        out["default"] = {
            name: sub["default"] for name, sub in out["properties"].items() if "default" in sub
        }
    return out


def openapi_schema(model: type[AgentSpec] | type[AgentStatus]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return dict(_complete_defaults(_resolve(raw, defs)))


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition of agents.agentry.dev."""
    spec_schema = openapi_schema(AgentSpec)
    status_schema = openapi_schema(AgentStatus)
    status_schema.pop("required", None)
    for prop in status_schema.get("properties", {}).values():
        prop.pop("default", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": c.CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": c.PART_OF},
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": list(c.SHORT_NAMES),
                "categories": list(c.CATEGORIES),
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An AI agent run by the Agentry operator.",
                            "x-kubernetes-validations": _name_rules(),
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _complete_defaults({**spec_schema, "default": {}}),
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def _name_rules() -> list[dict[str, str]]:
    """metadata.name is checked before any child exists: a name that no Service or pod
    could take would otherwise fail every reconcile."""
    return [
        {
            "rule": f"self.metadata.name.size() <= {NAME_MAX}",
            "message": f"metadata.name must be at most {NAME_MAX} characters (the StatefulSet "
            "labels its pods with the name plus a 10-character revision hash, and a label "
            "value is at most 63)",
        },
        {
            "rule": f"self.metadata.name.matches('{DNS_1035_LABEL}')",
            "message": "metadata.name must be a DNS-1035 label: lower-case letters, digits "
            "and '-', starting with a letter and ending with a letter or digit (it names "
            "the Agent's Service)",
        },
    ]


def _printer_columns() -> list[dict[str, Any]]:
    """Request counters only at `-o wide` (priority 1): plain `kubectl get` stays narrow;
    the token total is shown always, since tokens are what an Agent costs."""
    return [
        {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Tokens", "type": "integer", "jsonPath": ".status.metrics.tokens"},
        {
            "name": "Requests",
            "type": "integer",
            "jsonPath": ".status.metrics.requests",
            "priority": 1,
        },
        {
            "name": "Throttled",
            "type": "integer",
            "jsonPath": ".status.metrics.throttled",
            "priority": 1,
        },
        {"name": "Errors", "type": "integer", "jsonPath": ".status.metrics.errors", "priority": 1},
        {"name": "Checkpoint age", "type": "date", "jsonPath": ".status.lastCheckpoint.time"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def render() -> str:
    """The CRD as the YAML text that is committed."""
    header = "# Generated by `python -m agentry_operator.crd --write` (make crds). Do not edit.\n"
    return header + yaml.dump(build_crd(), Dumper=_PlainDumper, sort_keys=False, width=100)


class _PlainDumper(yaml.SafeDumper):
    """Writes a repeated object out in full: `&id001` anchors confuse readers and some
    tools (kubectl explain, Helm post-renderers, diff reviews)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def output_paths(root: Path) -> list[Path]:
    """Where the committed copies live, relative to the repository root."""
    return [root / "crds" / CRD_FILE, root / "charts" / "agentry" / "crds" / CRD_FILE]


def repository_root() -> Path:
    """The checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the committed copies")
    parser.add_argument("--root", type=Path, default=repository_root(), help="repository root")
    args = parser.parse_args(argv)
    text = render()
    if not args.write:
        sys.stdout.write(text)
        return 0
    for path in output_paths(args.root):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

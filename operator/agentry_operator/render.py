"""`python -m agentry_operator.render AGENT.yaml...`: the children the operator would create.

Prints, as one YAML stream, what the pure builders make of each Agent in the files: the
same objects the operator applies, in its order, with a freshly generated key Secret and
the config hash that follows from it. `make lint` feeds this to kube-score for every
file in examples/ (hack/kube-score.sh); it is also a way to review what an Agent will
become before applying it. Nothing here talks to a cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentry_operator import builders
from agentry_operator.keyrings import ring_annotations, ring_of
from agentry_operator.models import Agent, field_errors
from agentry_operator.settings import OperatorSettings


def _optional(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [] if obj is None else [obj]


def children(agent: Agent, settings: OperatorSettings) -> list[dict[str, Any]]:
    """Every child of `agent`, in the order `Reconciler.converge` applies them."""
    config_map = builders.build_config_map(agent)
    secret = builders.build_key_secret(agent)
    ring = ring_of(secret)
    out = [
        builders.build_service_account(agent),
        builders.build_role(agent),
        builders.build_role_binding(agent),
        secret,
        config_map,
        builders.build_profile_config_map(agent),
        builders.build_limits_config_map(agent),
        builders.build_pods_service(agent),
        *_optional(builders.build_network_policy(agent, settings)),
        builders.build_statefulset(
            agent, settings, builders.config_hash(config_map["data"], ring), ring_annotations(ring)
        ),
    ]
    pdb = builders.build_pdb(agent)
    if pdb is not None:
        out.append(pdb)
    out.append(builders.build_service(agent))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentry_operator.render",
        description="Print the children the operator would create for each Agent.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="Agent manifests (YAML)")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    objects: list[dict[str, Any]] = []
    for path in args.files:
        for body in yaml.safe_load_all(path.read_text()):
            if not body or body.get("kind") != "Agent":
                continue
            try:
                agent = Agent.from_body(body)
            except ValidationError as exc:
                print(f"{path}: {field_errors(exc)}", file=sys.stderr)
                return 2
            objects.extend(children(agent, settings))
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

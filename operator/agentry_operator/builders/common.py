"""Metadata every child shares: name, namespace, labels and the owner reference."""

from __future__ import annotations

from typing import Any

from agentry_operator import constants as c
from agentry_operator.models import Agent


def owner_reference(agent: Agent) -> dict[str, Any]:
    """The controller reference that lets garbage collection follow the Agent."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": agent.name,
        "uid": agent.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(agent: Agent, name: str, *, owned: bool = True) -> dict[str, Any]:
    """Child metadata with the contract labels and, normally, the owner reference."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": agent.namespace,
        "labels": c.labels(agent.name),
    }
    if owned:
        meta["ownerReferences"] = [owner_reference(agent)]
    return meta

"""Drift learned from watch events (watching.py): which events wake an Agent's guard, what
the safety net checks of the key Secret, and how far apart its ticks are."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from agentry_operator import builders
from agentry_operator.keyrings import ring_annotations, ring_of
from agentry_operator.models import Agent
from agentry_operator.settings import OperatorSettings
from agentry_operator.watching import (
    SPREAD,
    Children,
    desired_names,
    drifted,
    jittered,
    key_secret_drifted,
    next_tick,
    slim_agent,
)

from tests.support.agents import shared_state

SETTINGS = OperatorSettings(runtime_image="img:1")


def body(**spec: Any) -> dict[str, Any]:
    if spec.get("replicas", 1) > 1:
        spec.setdefault("state", shared_state())
    meta = {"name": "bot", "namespace": "ns", "uid": "u1", "generation": 1}
    return {"metadata": meta, "spec": spec, "status": {"observedGeneration": 1}}


def agent(**spec: Any) -> Agent:
    return Agent.from_body(body(**spec))


def as_live(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: the built object plus fields it adds."""
    live = copy.deepcopy(obj)
    live["metadata"]["resourceVersion"] = "7"
    live["metadata"]["uid"] = "child-uid"
    if live["kind"] == "Service":
        live["spec"]["clusterIP"] = "10.0.0.9"
    return live


def live_statefulset(a: Agent) -> dict[str, Any]:
    ring = ring_of(builders.build_key_secret(a, lambda n: b"k" * n))
    sts = builders.build_statefulset(a, SETTINGS, "hash-1", ring_annotations(ring))
    return as_live(sts)


def test_a_child_as_built_plus_server_fields_is_not_drift() -> None:
    a = agent()
    for obj in (builders.build_service(a), builders.build_config_map(a), builders.build_role(a)):
        assert not drifted(a, SETTINGS, obj["kind"], obj["metadata"]["name"], as_live(obj))
    sts = live_statefulset(a)
    assert not drifted(a, SETTINGS, "StatefulSet", "bot", sts)


def test_a_changed_or_deleted_child_is_drift() -> None:
    a = agent()
    service = as_live(builders.build_service(a))
    service["spec"]["ports"][0]["port"] = 81
    assert drifted(a, SETTINGS, "Service", "bot", service)
    config = as_live(builders.build_config_map(a))
    config["data"] = {}
    assert drifted(a, SETTINGS, "ConfigMap", config["metadata"]["name"], config)
    assert drifted(a, SETTINGS, "ConfigMap", config["metadata"]["name"], None)
    sts = live_statefulset(a)
    sts["spec"]["replicas"] = 3
    assert drifted(a, SETTINGS, "StatefulSet", "bot", sts)


def test_objects_the_agent_does_not_build_are_not_drift_except_its_own_stale_pdb() -> None:
    a = agent(replicas=1)
    state = {"kind": "ConfigMap", "metadata": {"name": "bot-0-state", "labels": {}}}
    assert not drifted(a, SETTINGS, "ConfigMap", "bot-0-state", state)
    assert not drifted(a, SETTINGS, "ConfigMap", "bot-0-state", None)
    pdb = as_live(builders.build_pdb(agent(replicas=2)) or {})
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert drifted(a, SETTINGS, "PodDisruptionBudget", "bot", pdb)  # scaled down to 1
    assert not drifted(a, SETTINGS, "PodDisruptionBudget", "bot", None)


def test_only_a_registered_guard_is_woken_and_only_by_drift() -> None:
    children = Children(SETTINGS)
    a = agent()
    service = as_live(builders.build_service(a))
    assert not children.event("Service", "DELETED", service)  # no guard: not converged yet
    guard = children.guard(("ns", "bot"), body())
    assert not children.event("Service", "MODIFIED", service)  # the operator's own write
    assert not guard.wake.is_set()
    assert children.event("Service", "DELETED", service)
    assert guard.wake.is_set()
    children.release(("ns", "bot"), guard)
    assert ("ns", "bot") not in children.guards


async def test_drift_seen_while_a_spec_change_is_converged_wakes_the_guard_later() -> None:
    """The update handler is converging generation 2: a child that still shows
    generation 1's spec is what it is about to write. The guard looks once, later."""
    children = Children(SETTINGS)
    service = as_live(builders.build_service(agent()))
    changed = body(replicas=1)
    changed["metadata"]["generation"] = 2
    guard = children.guard(("ns", "bot"), changed)
    service["spec"]["ports"][0]["port"] = 81
    assert children.event("Service", "MODIFIED", service)
    assert children.event("Service", "MODIFIED", service)  # one deferred wake, not two
    assert not guard.wake.is_set()
    assert guard.deferred is not None
    guard.deferred.cancel()
    guard.deferred = None
    guard.wake_later(0.01)
    await asyncio.wait_for(guard.wake.wait(), timeout=5)
    children.release(("ns", "bot"), guard)


def test_the_children_seen_say_which_ones_no_watch_has_shown() -> None:
    children = Children(SETTINGS)
    a = agent()
    assert children.unseen(a) == desired_names(a, SETTINGS)
    built = [as_live(builders.build_service(a)), as_live(builders.build_pods_service(a))]
    for kind, name in desired_names(a, SETTINGS):
        children.seen.child(kind, "ADDED", labelled(name))
    assert children.unseen(a) == set()
    children.event("Service", "DELETED", built[0])
    assert children.unseen(a) == {("Service", "bot")}
    assert ("Service", "bot-pods") in desired_names(a, SETTINGS)


def labelled(name: str, namespace: str = "ns", agent_name: str = "bot") -> dict[str, Any]:
    labels = {"agentry.dev/agent": agent_name, "app.kubernetes.io/managed-by": "agentry-operator"}
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}


def test_a_complete_list_wakes_the_guard_of_a_child_deleted_while_no_watch_ran() -> None:
    children = Children(SETTINGS)
    a = agent()
    for kind, name in desired_names(a, SETTINGS):
        children.seen.child(kind, None, labelled(name))
    children.seen.child("Service", None, labelled("other", agent_name="other"))
    children.seen.child("Service", None, labelled("bot", namespace="ns2"))
    guard = children.guard(("ns", "bot"), body())
    # The Service list has bot-pods and the other Agent's, not bot's own.
    assert children.listed("Service", "ns", {("ns", "bot-pods"), ("ns", "other")}) == ["ns/bot"]
    assert guard.wake.is_set()
    assert children.unseen(a) == {("Service", "bot")}
    assert children.seen.names(("ns2", "bot")) == {("Service", "bot")}  # not listed there
    children.release(("ns", "bot"), guard)
    assert children.listed("Service", None, set()) == []  # gone, but no guard wants them
    assert children.seen.names(("ns2", "bot")) == set()


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_the_first_safety_net_tick_falls_anywhere_in_one_interval(draw: float) -> None:
    value = next_tick(1800, first=True, rand=lambda low, high: low + (high - low) * draw)
    assert value == 1800 * draw
    later = next_tick(1800, first=False, rand=lambda low, high: low + (high - low) * draw)
    assert 1800 * (1 - SPREAD) <= later <= 1800 * (1 + SPREAD)


def test_the_key_secret_check_of_the_safety_net() -> None:
    a = agent()
    secret = as_live(builders.build_key_secret(a, lambda n: b"k" * n))
    sts = live_statefulset(a)
    assert key_secret_drifted(a, None, sts)
    assert not key_secret_drifted(a, secret, sts)
    assert not key_secret_drifted(a, secret, None)  # no pods given a ring yet
    other = as_live(builders.build_key_secret(a, lambda n: b"x" * n))
    other["stringData"] = {"active-key-id": "k-other", "key-k-other": "eA=="}
    assert key_secret_drifted(a, other, sts)  # other ids than the pods were given
    retained = copy.deepcopy(secret)
    retained["metadata"]["labels"]["agentry.dev/retained"] = "true"
    assert key_secret_drifted(a, retained, sts)
    foreign = copy.deepcopy(secret)
    foreign["metadata"]["ownerReferences"] = []
    assert key_secret_drifted(a, foreign, sts)


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_safety_net_ticks_spread_around_the_interval(draw: float) -> None:
    value = jittered(1800, lambda low, high: low + (high - low) * draw)
    assert 1800 * (1 - SPREAD) <= value <= 1800 * (1 + SPREAD)


def test_a_guard_keeps_the_agent_without_managed_fields_or_kopfs_copy_of_the_spec() -> None:
    notes = {"agentry.dev/last-handled-configuration": '{"spec": {}}', "team": "a"}
    meta = {"name": "bot", "namespace": "ns", "uid": "u1", "generation": 2}
    full = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {**meta, "annotations": notes, "managedFields": [{"manager": "kubectl"}]},
        "spec": {"replicas": 1},
        "status": {"phase": "Running"},
    }
    slim = slim_agent(full)
    assert slim == {**full, "metadata": {**meta, "annotations": {"team": "a"}}}
    long = "x" * 100
    again = slim_agent({**full, "spec": {"description": long, "environment": "production"}})
    other = slim_agent({**full, "spec": {"description": long, "environment": "production"}})
    assert again["spec"]["environment"] is other["spec"]["environment"]  # shared
    assert again["spec"]["description"] == long

"""What the watches have shown (seen.py): the children by Agent with the slim StatefulSet
the status reads, the heartbeats by Agent, and what a complete list says is gone."""

from __future__ import annotations

import json
from typing import Any

from agentry_operator.seen import Seen, slim_statefulset


def labelled(name: str, agent: str = "bot", namespace: str = "ns", **rest: Any) -> dict[str, Any]:
    labels = {"agentry.dev/agent": agent, "app.kubernetes.io/managed-by": "agentry-operator"}
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, **rest}


def lease(pod: str, agent: str = "bot", beat_at: str = "2026-11-29T12:00:00Z") -> dict[str, Any]:
    obj = labelled(f"{pod}-heartbeat", agent, spec={"holderIdentity": pod})
    annotation = json.dumps({"time": beat_at, "ready": True})
    obj["metadata"]["annotations"] = {"agentry.dev/heartbeat": annotation}
    return obj


def statefulset(replicas: int) -> dict[str, Any]:
    template = {"metadata": {"annotations": {"agentry.dev/config-hash": "h1"}}, "spec": {}}
    template["spec"] = {"containers": [{"name": "agent", "image": "img:1"}]}
    return labelled(
        "bot",
        spec={"replicas": replicas, "template": template},
        status={"replicas": replicas, "readyReplicas": 1},
    )


def test_the_statefulset_is_kept_slim_and_replaced_by_each_event() -> None:
    seen = Seen()
    seen.child("StatefulSet", "ADDED", statefulset(1))
    seen.child("StatefulSet", "MODIFIED", statefulset(2))
    slim = seen.statefulset("ns", "bot")
    assert slim == slim_statefulset(statefulset(2))
    assert slim is not None
    assert slim["spec"]["replicas"] == 2
    assert "containers" not in str(slim)
    assert seen.statefulset("ns", "other") is None
    seen.child("StatefulSet", "DELETED", statefulset(2))
    assert seen.statefulset("ns", "bot") is None
    assert seen.children == {}  # an Agent with nothing left costs nothing


def test_children_are_kept_by_agent_as_kind_and_name_only() -> None:
    seen = Seen()
    seen.child("Service", None, labelled("bot"))
    seen.child("ConfigMap", "ADDED", labelled("bot-config"))
    seen.child("Service", "ADDED", labelled("other", agent="other"))
    assert seen.child("Service", "ADDED", {"metadata": {"name": "x", "namespace": "ns"}}) is None
    assert set(seen.names(("ns", "bot"))) == {("Service", "bot"), ("ConfigMap", "bot-config")}
    assert seen.children[("ns", "bot")][("Service", "bot")] is None


def test_a_child_whose_agent_label_was_removed_is_forgotten_by_its_name() -> None:
    """The API server sends DELETED for an object that left the watch's selector, with
    the labels it has now: the Agent is found among the namespace's."""
    seen = Seen()
    seen.child("Role", "ADDED", labelled("bot"))
    unlabelled = {"metadata": {"name": "bot", "namespace": "ns", "labels": {}}}
    assert seen.child("Role", "DELETED", unlabelled) == ("ns", "bot")
    assert set(seen.names(("ns", "bot"))) == set()


def test_a_complete_list_forgets_what_it_did_not_have_in_its_namespace_only() -> None:
    seen = Seen()
    seen.child("Service", None, labelled("bot"))
    seen.child("Service", None, labelled("bot-pods"))
    seen.child("ConfigMap", None, labelled("bot-config"))
    seen.child("Service", None, labelled("bot", namespace="ns2"))
    gone = seen.children_gone("Service", "ns", {("ns", "bot-pods")})
    assert gone == [(("ns", "bot"), "bot")]
    assert set(seen.names(("ns", "bot"))) == {("Service", "bot-pods"), ("ConfigMap", "bot-config")}
    assert set(seen.names(("ns2", "bot"))) == {("Service", "bot")}


def test_heartbeats_by_agent_follow_their_leases() -> None:
    seen = Seen()
    seen.beat(None, lease("bot-0"))
    seen.beat("ADDED", lease("bot-1"))
    seen.beat("ADDED", lease("other-0", agent="other"))
    assert sorted(beat.pod for beat in seen.beats("ns", "bot")) == ["bot-0", "bot-1"]
    seen.beat("MODIFIED", lease("bot-0", beat_at="2026-11-29T12:00:15Z"))
    assert {beat.time.second for beat in seen.beats("ns", "bot")} == {0, 15}
    unreadable = lease("bot-1")
    unreadable["metadata"]["annotations"] = {}
    seen.beat("MODIFIED", unreadable)  # an unreadable heartbeat counts as none
    assert [beat.pod for beat in seen.beats("ns", "bot")] == ["bot-0"]
    seen.beats_gone("ns", {("ns", "other-0-heartbeat")})
    assert seen.beats("ns", "bot") == []
    assert [beat.pod for beat in seen.beats("ns", "other")] == ["other-0"]
    seen.beat("DELETED", lease("other-0", agent="other"))
    assert seen.heartbeats == {}

"""Operator settings come from AGENTRY_OPERATOR_* variables, read once."""

from __future__ import annotations

import pytest
from agentry_operator.settings import OperatorSettings


def test_watch_namespaces_accepts_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRY_OPERATOR_WATCH_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("AGENTRY_OPERATOR_RUNTIME_IMAGE", "example/agentry:9")
    settings = OperatorSettings()
    assert settings.watch_namespaces == ["team-a", "team-b"]
    assert settings.runtime_image == "example/agentry:9"


def test_an_empty_watch_list_means_the_whole_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRY_OPERATOR_WATCH_NAMESPACES", "")
    assert OperatorSettings().watch_namespaces == []


def test_the_agent_env_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRY_OPERATOR_AGENT_ENV", '{"AGENTRY_HEARTBEAT_INTERVAL_SECONDS": "2"}')
    assert OperatorSettings().agent_env == {"AGENTRY_HEARTBEAT_INTERVAL_SECONDS": "2"}

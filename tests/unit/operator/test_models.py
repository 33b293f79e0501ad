"""The Agent models: defaults, camelCase on the wire, and validation messages."""

from __future__ import annotations

import pytest
from agentry_operator.models import Agent, AgentSpec
from pydantic import ValidationError


def test_an_empty_spec_gets_the_documented_defaults() -> None:
    spec = AgentSpec()
    assert spec.replicas == 1
    assert spec.environment == "development"
    assert spec.state.backend == "pvc"
    assert spec.state.retain_on_delete is True
    assert spec.rate_limit.requests_per_second == 0
    assert spec.alerting.error_rate_threshold == 0.1


def test_camel_case_fields_are_read_from_a_kubernetes_body() -> None:
    agent = Agent.from_body(
        {
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "generation": 2},
            "spec": {
                "rateLimit": {"requestsPerSecond": 5, "burst": 9},
                "model": {"provider": "openai", "apiKeySecretRef": {"name": "s", "key": "k"}},
            },
        }
    )
    assert agent.spec.rate_limit.burst == 9
    assert agent.spec.model.api_key_secret_ref is not None
    assert agent.metadata.generation == 2


def test_a_threshold_outside_zero_to_one_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"error_rate_threshold|errorRateThreshold"):
        AgentSpec.model_validate({"alerting": {"errorRateThreshold": 1.5}})


def test_negative_replicas_are_rejected() -> None:
    with pytest.raises(ValidationError):
        AgentSpec.model_validate({"replicas": -1})

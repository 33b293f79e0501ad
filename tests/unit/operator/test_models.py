"""The Agent models: defaults, camelCase on the wire, and validation messages."""

from __future__ import annotations

from typing import Any

import pytest
from agentry_operator.models import Agent, AgentSpec, field_errors
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


def _body(**spec: object) -> dict[str, object]:
    return {"metadata": {"name": "a", "namespace": "n"}, "spec": spec}


@pytest.mark.parametrize("name", ["AGENTRY_PORT", "agentry_port", "Agentry_Log_Level"])
def test_env_may_not_override_the_operators_settings_in_any_case(name: str) -> None:
    """pydantic-settings reads env names without regard to case, so each would override."""
    with pytest.raises(ValidationError, match=r"spec\.env\.0\.name|AGENTRY_"):
        Agent.from_body(_body(env=[{"name": name, "value": "1"}]))


def test_env_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="repeated: X"):
        Agent.from_body(_body(env=[{"name": "X"}, {"name": "X", "value": "2"}]))


def test_a_resource_that_is_not_a_quantity_is_refused() -> None:
    with pytest.raises(ValidationError, match="requests"):
        Agent.from_body(_body(resources={"requests": {"cpu": "lots"}}))
    ok = Agent.from_body(_body(resources={"requests": {"cpu": "100m", "memory": 134217728}}))
    assert ok.spec.resources is not None


def test_the_client_key_is_the_token_when_auth_is_on_unless_set() -> None:
    auth = {"enabled": True, "tokenSecretRef": {"name": "t", "key": "tokens"}}
    assert Agent.from_body(_body()).spec.effective_client_key == "header"
    assert Agent.from_body(_body(auth=auth)).spec.effective_client_key == "token"
    explicit = Agent.from_body(_body(auth=auth, rateLimit={"clientKey": "header"}))
    assert explicit.spec.effective_client_key == "header"


def test_the_token_client_key_without_auth_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"spec\.rateLimit\.clientKey"):
        Agent.from_body(_body(rateLimit={"clientKey": "token"}))


def test_field_errors_name_each_field_as_it_is_on_the_wire() -> None:
    with pytest.raises(ValidationError) as caught:
        Agent.from_body(_body(rateLimit={"perClientRequestsPerSecond": 0}, env=[{"name": "1x"}]))
    text = field_errors(caught.value)
    assert "spec.rateLimit.perClientRequestsPerSecond: Input should be greater than 0" in text
    assert "spec.env[0].name: " in text


def test_an_endpoint_with_a_password_in_it_is_refused_naming_the_field() -> None:
    body = {"metadata": {"name": "a", "namespace": "n"}}
    model = {"provider": "openai", "name": "m", "apiKeySecretRef": {"name": "k", "key": "k"}}
    with pytest.raises(ValidationError, match="endpoint"):
        Agent.model_validate(
            {**body, "spec": {"model": {**model, "endpoint": "https://u:pw@llm.local/v1"}}}
        )
    Agent.model_validate({**body, "spec": {"model": {**model, "endpoint": "https://llm.local/v1"}}})


def test_instructions_inline_and_from_a_configmap_together_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"spec\.instructions or spec\.instructionsFrom"):
        AgentSpec.model_validate(
            {
                "instructions": "You are Ada.",
                "instructionsFrom": {"configMapKeyRef": {"name": "prompts", "key": "ada"}},
            }
        )


def test_skill_ids_are_unique_and_well_formed() -> None:
    with pytest.raises(ValidationError, match="repeated: faq"):
        AgentSpec.model_validate(
            {"skills": [{"id": "faq", "name": "FAQ"}, {"id": "faq", "name": "Again"}]}
        )
    with pytest.raises(ValidationError, match=r"skills\.0\.id"):
        AgentSpec.model_validate({"skills": [{"id": "no spaces", "name": "x"}]})


# ---- state backends (issue 8) ----------------------------------------------------------------

POSTGRES: dict[str, Any] = {
    "backend": "postgres",
    "postgres": {"connectionSecretRef": {"name": "pg", "key": "uri"}},
}


@pytest.mark.parametrize("backend", ["pvc", "configmap"])
def test_more_than_one_replica_on_a_single_replica_backend_names_postgres(backend: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Agent.from_body(
            {"metadata": {"name": "a"}, "spec": {"replicas": 2, "state": {"backend": backend}}}
        )
    assert "spec.state.backend: postgres" in field_errors(caught.value)


def test_postgres_takes_any_replica_count_and_fills_the_defaults() -> None:
    spec = AgentSpec.model_validate({"replicas": 5, "state": POSTGRES})
    assert spec.state.postgres is not None
    assert (spec.state.postgres.schema_name, spec.state.postgres.pool_size) == ("agentry", 10)
    assert spec.state.postgres.ssl_mode is None
    assert spec.state.retention_seconds == 0


def test_postgres_without_a_connection_secret_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="connectionSecretRef"):
        AgentSpec.model_validate({"state": {"backend": "postgres"}})


def test_postgres_settings_on_another_backend_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"spec.state.postgres may only be set"):
        AgentSpec.model_validate({"state": {**POSTGRES, "backend": "pvc"}})


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("1h30m", 5400), ("45s", 45)]
)
def test_retention_is_a_duration_in_seconds(text: str, seconds: int) -> None:
    spec = AgentSpec.model_validate({"state": {**POSTGRES, "retention": text}})
    assert spec.state.retention_seconds == seconds


@pytest.mark.parametrize("text", ["30", "d", "1w", "-1h", "1.5h", "30 d"])
def test_a_retention_that_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="retention"):
        AgentSpec.model_validate({"state": {**POSTGRES, "retention": text}})


def test_retention_needs_the_postgres_backend() -> None:
    with pytest.raises(ValidationError, match=r"spec.state.retention needs"):
        AgentSpec.model_validate({"state": {"backend": "pvc", "retention": "30d"}})


def test_an_unknown_ssl_mode_is_refused() -> None:
    state = {**POSTGRES, "postgres": {**POSTGRES["postgres"], "sslMode": "always"}}
    with pytest.raises(ValidationError, match=r"ssl_mode|sslMode"):
        AgentSpec.model_validate({"state": state})


def test_tool_servers_get_the_documented_defaults_and_unique_names() -> None:
    spec = AgentSpec.model_validate({"tools": [{"name": "search", "url": "http://s:8000/mcp"}]})
    assert spec.tools[0].timeout_seconds == 30
    assert spec.tools[0].allowed_tools is None
    assert (spec.tool_policy.max_steps, spec.tool_policy.max_parallel) == (8, 4)
    with pytest.raises(ValidationError, match="repeated: search"):
        AgentSpec.model_validate(
            {
                "tools": [
                    {"name": "search", "url": "http://a/mcp"},
                    {"name": "search", "url": "http://b/mcp"},
                ]
            }
        )


@pytest.mark.parametrize("url", ["ftp://s/mcp", "http://user:pw@s/mcp", "search"])
def test_a_tool_url_that_is_not_plain_http_is_refused_naming_the_field(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Agent.from_body(_body(tools=[{"name": "s", "url": url}]))
    assert "spec.tools[0].url" in field_errors(caught.value)


def test_a_client_token_budget_above_the_agents_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="perClientTokensPerMinute must not exceed"):
        AgentSpec.model_validate(
            {"rateLimit": {"tokensPerMinute": 100, "perClientTokensPerMinute": 200}}
        )

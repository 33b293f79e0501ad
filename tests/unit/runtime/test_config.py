"""Configuration: validation with one line naming the setting, exit 2, and check-config.

Checks: a bad value exits 2 with `error: AGENTRY_X: ...`; an endpoint with credentials is
refused without echoing them; staging/production refuse to
start without KEYS_DIR; openai needs endpoint, name and key file; check-config prints the
effective settings as YAML or JSON with file paths but never secret file contents.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent_runtime.cli import main
from agent_runtime.config import load_settings
from agent_runtime.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AGENTRY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTRY_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("AGENTRY_PORT", "70000", "error: AGENTRY_PORT: must be between 1 and 65535 (got 70000)"),
        ("AGENTRY_PORT", "http", "error: AGENTRY_PORT: "),
        ("AGENTRY_STATE_BACKEND", "disk", "error: AGENTRY_STATE_BACKEND: input should be"),
        ("AGENTRY_RATE_LIMIT_RPS", "-1", "error: AGENTRY_RATE_LIMIT_RPS: "),
        ("AGENTRY_MAX_CONCURRENT", "0", "error: AGENTRY_MAX_CONCURRENT: "),
        ("AGENTRY_ENVIRONMENT", "production", "error: AGENTRY_KEYS_DIR: required in production"),
        ("AGENTRY_MODEL_PROVIDER", "openai", "error: AGENTRY_MODEL_ENDPOINT: required"),
        (
            "AGENTRY_RATE_LIMIT_CLIENT_KEY",
            "token",
            "error: AGENTRY_RATE_LIMIT_CLIENT_KEY: token needs AGENTRY_AUTH_TOKENS_FILE",
        ),
        ("AGENTRY_BODY_READ_TIMEOUT_SECONDS", "0", "error: AGENTRY_BODY_READ_TIMEOUT_SECONDS: "),
    ],
)
async def test_a_bad_setting_exits_2_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert err.count("\n") == 1


async def test_an_endpoint_with_credentials_is_refused_at_startup_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """aiohttp refuses user:pw@ next to a bearer header, which failed every request."""
    monkeypatch.setenv("AGENTRY_MODEL_PROVIDER", "openai")
    monkeypatch.setenv("AGENTRY_MODEL_ENDPOINT", "https://bob:pw-SECRET@api.example/v1")
    monkeypatch.setenv("AGENTRY_MODEL_NAME", "m")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: AGENTRY_MODEL_ENDPOINT: must not contain user:password@")
    assert "SECRET" not in err
    assert "bob" not in err


@pytest.mark.parametrize(
    ("auth", "explicit", "effective"),
    [
        (False, None, "header"),
        (True, None, "token"),
        (True, "header", "header"),
        (True, "ip", "ip"),
    ],
)
async def test_the_client_key_is_the_token_with_auth_on_unless_set_explicitly(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    auth: bool,
    explicit: str | None,
    effective: str,
) -> None:
    if auth:
        monkeypatch.setenv("AGENTRY_AUTH_TOKENS_FILE", str(tmp_path / "tokens"))
    if explicit:
        monkeypatch.setenv("AGENTRY_RATE_LIMIT_CLIENT_KEY", explicit)
    settings = load_settings()
    assert settings.effective_client_key == effective
    assert settings.redacted()["AGENTRY_RATE_LIMIT_CLIENT_KEY"] == effective


async def test_openai_without_an_api_key_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRY_MODEL_PROVIDER", "openai")
    monkeypatch.setenv("AGENTRY_MODEL_ENDPOINT", "https://api.example/v1")
    monkeypatch.setenv("AGENTRY_MODEL_NAME", "m")
    from agent_runtime.config import check_files

    with pytest.raises(ConfigError) as caught:
        check_files(load_settings())
    assert caught.value.setting == "AGENTRY_MODEL_API_KEY_FILE"


async def test_check_config_shows_paths_but_never_secret_contents(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("sk-live-SECRET-VALUE")
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:tok-SECRET-TOKEN\n")
    monkeypatch.setenv("AGENTRY_MODEL_PROVIDER", "openai")
    monkeypatch.setenv("AGENTRY_MODEL_ENDPOINT", "https://api.example/v1")
    monkeypatch.setenv("AGENTRY_MODEL_NAME", "gpt-test")
    monkeypatch.setenv("AGENTRY_MODEL_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("AGENTRY_AUTH_TOKENS_FILE", str(tokens))
    monkeypatch.setenv("AGENTRY_RATE_LIMIT_RPS", "5")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "SECRET" not in out
    data = yaml.safe_load(out)
    assert data["AGENTRY_MODEL_API_KEY_FILE"] == str(key_file)
    assert data["AGENTRY_RATE_LIMIT_BURST"] == 5
    assert data["AGENTRY_MODEL_ENDPOINT"] == "https://api.example/v1"
    assert main(["check-config", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["AGENTRY_MODEL_NAME"] == "gpt-test"


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        (
            "https://api.example/v1?api_key=SECRET-1&api-version=2024-06-01",
            "https://api.example/v1?api_key=***&api-version=2024-06-01",
        ),
        (
            "https://blob.example/v1?sv=2024&sig=SECRET-2&access_token=SECRET-3",
            "https://blob.example/v1?sv=2024&sig=***&access_token=***",
        ),
    ],
)
async def test_check_config_redacts_secrets_in_the_endpoints_query(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    endpoint: str,
    shown: str,
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("sk-test")
    monkeypatch.setenv("AGENTRY_MODEL_PROVIDER", "openai")
    monkeypatch.setenv("AGENTRY_MODEL_ENDPOINT", endpoint)
    monkeypatch.setenv("AGENTRY_MODEL_NAME", "m")
    monkeypatch.setenv("AGENTRY_MODEL_API_KEY_FILE", str(key_file))
    assert main(["check-config", "-o", "json"]) == 0
    out = capsys.readouterr().out
    assert "SECRET" not in out
    assert json.loads(out)["AGENTRY_MODEL_ENDPOINT"] == shown
    monkeypatch.setenv("AGENTRY_MODEL_ENDPOINT", endpoint.replace("https", "ftp"))
    assert main(["check-config"]) == 2
    assert "SECRET" not in capsys.readouterr().err


async def test_staging_with_a_keys_dir_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTRY_ENVIRONMENT", "staging")
    monkeypatch.setenv("AGENTRY_KEYS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.effective_log_level == "info"

"""The startup warning about secret files other users can read (issue 16, item 16).

Checks: a key file, the model API key file or the tokens file readable by others is
named in a warning with its mode and never its content; files private to the runtime's
user, or shared only with a group it belongs to (the pod's fsGroup), pass silently.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent_runtime.config import Settings
from agent_runtime.crypto import KeyRing
from agent_runtime.secretfiles import warn_about_exposed_secrets
from tests.support.runtime import make_settings


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    KeyRing.generate_development(tmp_path / "keys")
    (tmp_path / "api-key").write_text("sk-SECRET-api-key")
    (tmp_path / "tokens").write_text("alice:tok-SECRET\n")
    for path in [*(tmp_path / "keys").iterdir(), tmp_path / "api-key", tmp_path / "tokens"]:
        path.chmod(0o600)
    return tmp_path


def settings_for(directory: Path) -> Settings:
    return make_settings(
        directory,
        keys_dir=directory / "keys",
        model_api_key_file=directory / "api-key",
        auth_tokens_file=directory / "tokens",
    )


def test_secret_files_readable_by_others_are_named_in_a_warning(
    secrets_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = next((secrets_dir / "keys").glob("key.*"))
    key_file.chmod(0o644)
    (secrets_dir / "tokens").chmod(0o604)
    settings = settings_for(secrets_dir)
    with caplog.at_level(logging.WARNING, logger="agent_runtime.secretfiles"):
        exposed = warn_about_exposed_secrets(settings)
    assert exposed == [key_file, secrets_dir / "tokens"]
    fields = [record.fields for record in caplog.records]  # type: ignore[attr-defined]
    assert fields == [
        {"path": str(key_file), "mode": "0o644"},
        {"path": str(secrets_dir / "tokens"), "mode": "0o604"},
    ]
    assert "SECRET" not in caplog.text


def test_private_files_and_the_runtimes_own_group_pass_silently(
    secrets_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (secrets_dir / "api-key").chmod(0o440)  # the operator's defaultMode, with fsGroup
    os.chown(secrets_dir / "api-key", -1, os.getegid())
    settings = settings_for(secrets_dir)
    with caplog.at_level(logging.WARNING, logger="agent_runtime.secretfiles"):
        assert warn_about_exposed_secrets(settings) == []
    assert caplog.records == []

"""`kubectl agent keys export|import`: back up the key Secret and restore it.

Checks: export prints the Secret as YAML without server-owned fields and warns on
stderr; `-f` writes a file only its owner can read; import of an export creates the
Secret with the marks the operator adopts; import refuses a file that is not this
Agent's key ring (another Secret, a bad key, an active id without its key), and an
existing Secret is not overwritten.
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml


def test_export_prints_the_key_secret_and_warns_on_stderr(kubectl_agent, fake_cluster):
    result = kubectl_agent("keys", "export", "demo", "-n", "team-a")

    document = yaml.safe_load(result.out)
    assert result.code == 0
    assert document["kind"] == "Secret"
    assert document["metadata"] == {"name": "demo-keys", "namespace": "team-a"}
    assert document["data"] == fake_cluster.secrets["demo-keys"]["data"]
    assert "WARNING" in result.err
    assert "anyone with it can read the Agent's memory" in result.err


def test_export_to_a_file_is_readable_by_its_owner_only(kubectl_agent, tmp_path: Path):
    target = tmp_path / "demo-keys.yaml"

    result = kubectl_agent("keys", "export", "demo", "-f", str(target))

    assert result.code == 0
    assert result.out == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert yaml.safe_load(target.read_text())["metadata"]["name"] == "demo-keys"


def test_import_restores_an_exported_secret_for_the_operator_to_adopt(
    kubectl_agent, fake_cluster, tmp_path: Path
):
    backup = tmp_path / "backup.yaml"
    kubectl_agent("keys", "export", "demo", "-f", str(backup))
    data = dict(fake_cluster.secrets.pop("demo-keys")["data"])

    result = kubectl_agent("keys", "import", "demo", "-f", str(backup))

    restored = fake_cluster.secrets["demo-keys"]
    assert result.code == 0
    assert restored["data"] == data
    assert restored["metadata"]["labels"] == {
        "agentry.dev/agent": "demo",
        "agentry.dev/retained": "true",
    }
    assert "restored for Agent demo (active k1; keys k1)" in result.out


def test_import_refuses_what_is_not_this_agents_key_ring(
    kubectl_agent, fake_cluster, tmp_path: Path
):
    good = yaml.safe_load(kubectl_agent("keys", "export", "demo").out)
    fake_cluster.secrets.pop("demo-keys")
    cases = {
        "other": {**good, "metadata": {"name": "other-keys"}},
        "short": {**good, "data": {**good["data"], "key.k1": "eHl6"}},
        "inactive": {**good, "data": {"active-key-id": "azk=", "key.k1": good["data"]["key.k1"]}},
        "configmap": {**good, "kind": "ConfigMap"},
    }
    expected = {
        "other": "it is Secret 'other-keys', the Agent's key Secret is 'demo-keys'",
        "short": "key.k1 is not base64 of 32 bytes",
        "inactive": "active-key-id 'k9' is not one of its keys (k1)",
        "configmap": "it is not a Secret manifest",
    }
    for case, document in cases.items():
        path = tmp_path / f"{case}.yaml"
        path.write_text(yaml.safe_dump(document))
        result = kubectl_agent("keys", "import", "demo", "-f", str(path))
        assert result.code == 1, case
        assert expected[case] in result.err, case
    assert "demo-keys" not in fake_cluster.secrets


def test_import_does_not_overwrite_an_existing_secret(kubectl_agent, tmp_path: Path):
    backup = tmp_path / "backup.yaml"
    kubectl_agent("keys", "export", "demo", "-f", str(backup))

    result = kubectl_agent("keys", "import", "demo", "-f", str(backup))

    assert result.code == 1
    assert "already exists" in result.err

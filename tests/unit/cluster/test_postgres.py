"""The PostgreSQL helper: its generated configuration, and a real server it runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from agentry_cluster import postgres
from agentry_cluster.postgres import PostgresServer


def test_hba_allows_only_scram_from_loopback_and_named_cidrs() -> None:
    lines = postgres.hba_lines(["10.77.0.0/16"])
    rules = [line for line in lines if not line.startswith("#")]
    assert all(line.endswith("scram-sha-256") for line in rules)
    assert "host all all 10.77.0.0/16 scram-sha-256" in rules
    assert not any("trust" in line or "0.0.0.0/0" in line for line in rules)


def test_url_percent_encodes_the_password() -> None:
    url = postgres.database_url("agentry", "p@ss/w:rd", "10.0.0.1", 5432, "db")
    assert url == "postgresql://agentry:p%40ss%2Fw%3Ard@10.0.0.1:5432/db"


def test_missing_binaries_give_a_reason(tmp_path: Path) -> None:
    reason = postgres.missing_reason(tmp_path)
    assert reason is not None
    assert "postgresql" in reason


def test_newest_installed_version_is_chosen(tmp_path: Path) -> None:
    for version in ("13", "16", "9"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "postgres").touch()
    assert postgres.find_bin_dir(tmp_path) == tmp_path / "16" / "bin"


def test_bad_database_name_is_refused_before_sql(postgres_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres_server.createdb('x"; DROP DATABASE postgres; --')


def test_each_test_database_is_reachable_with_the_password(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    out = postgres_server.psql("SELECT current_database()", database)
    assert out.strip() == database
    # Over TCP with a wrong password, scram refuses the login.
    wrong = postgres.database_url("agentry", "wrong", "127.0.0.1", postgres_server.port, database)
    bin_dir = postgres_server.bin_dir
    assert bin_dir is not None
    result = subprocess.run(
        [str(bin_dir / "psql"), "-X", "-c", "SELECT 1", wrong],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr

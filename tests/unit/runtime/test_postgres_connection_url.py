"""The connection URI comes from the mounted Secret file, so a rotated database password
reaches new connections without restarting the runtime (and a bad file changes nothing)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from agentry_cluster.postgres import PostgresServer, database_url

from agent_runtime.state.postgres import PostgresStore
from agent_runtime.state.postgres.store import DatabaseUnavailable
from agent_runtime.state.postgres.url import ConnectionUrl, ConnectionUrlError

URL_A = "postgresql://agentry:first-secret@db.example:5432/agentry"
URL_B = "postgresql://agentry:second-secret@db.example:5432/agentry"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> None:
    """As the kubelet does: a new file swapped into place (a new inode)."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text + "\n")
    fresh.replace(path)


def test_the_file_is_read_again_only_after_the_check_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "url", Clock()
    write(path, URL_A)
    url = ConnectionUrl(path=path, check_seconds=5, clock=clock)
    assert url.current() == URL_A
    write(path, URL_B)
    clock.now = 4.9
    assert url.current() == URL_A, "no stat on every turn"
    clock.now = 5.0
    assert url.current() == URL_B


@pytest.mark.parametrize("bad", ["", "not a uri", "mysql://u:p@h/db", "postgresql://u:p@h:x/d"])
def test_a_bad_file_keeps_the_last_good_uri_and_the_log_never_shows_the_content(
    tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "url"
    write(path, URL_A)
    url = ConnectionUrl(path=path, check_seconds=0)
    assert url.current() == URL_A
    write(path, bad.replace("p@", "leaked-password@"))
    with caplog.at_level(logging.WARNING):
        assert url.current() == URL_A
        assert url.current() == URL_A
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "said once, not on every check"
    assert str(path) in warnings[0]
    assert "leaked-password" not in caplog.text
    assert "first-secret" not in caplog.text


def test_a_missing_file_is_an_error_naming_the_path_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "url"
    url = ConnectionUrl(path=path, check_seconds=0)
    with pytest.raises(ConnectionUrlError, match=f"cannot read {path}"):
        url.current()
    write(path, URL_A)
    assert url.current() == URL_A


def with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return database_url(user, password, parts.hostname, parts.port, parts.path.lstrip("/"))


async def test_a_rotated_password_reaches_the_store_without_a_restart(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    user = f"rot_{secrets.token_hex(4)}"
    first, second = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    database = urlsplit(postgres_url).path.lstrip("/")
    postgres_server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{first}'")
    postgres_server.psql(f'GRANT ALL ON DATABASE "{database}" TO {user}')
    path = tmp_path / "url"
    write(path, with_password(postgres_url, user, first))
    store = PostgresStore(
        ConnectionUrl(path=path, check_seconds=0), namespace="ns", agent="a", pool_size=2
    )
    try:
        await store.probe()
        # The database's password changes first; the store still holds the old URI,
        # and its new connections are refused (a 503 for callers, not a crash).
        postgres_server.psql(f"ALTER ROLE {user} PASSWORD '{second}'")
        postgres_server.terminate_backends(database)
        with pytest.raises(DatabaseUnavailable):
            await store.probe()
        # Then the Secret, and so the file: the next use connects with the new one.
        write(path, with_password(postgres_url, user, second))
        await store.probe()
        assert second not in store.describe()
        assert "***@" in store.describe()
    finally:
        await store.close()

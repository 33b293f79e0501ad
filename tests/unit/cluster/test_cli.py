"""`agentry-cluster`: arguments, and what down and status say when no cluster exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentry_cluster import cli


def test_up_accepts_a_name_a_state_directory_and_no_node() -> None:
    args = cli.build_parser().parse_args(["up", "--name", "dev1", "--state-dir", "/x", "--no-node"])
    assert (args.command, args.name, args.state_dir, args.no_node) == (
        "up",
        "dev1",
        Path("/x"),
        True,
    )


def test_the_default_cluster_is_named_default() -> None:
    assert cli.build_parser().parse_args(["status"]).name == "default"


def test_status_of_a_missing_cluster_says_so_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "no cluster in" in capsys.readouterr().out


def test_down_of_a_missing_cluster_is_a_harmless_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().err


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([])

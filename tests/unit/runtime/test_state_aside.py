"""A fresh start moves unreadable pvc state aside, once, and deletes nothing.

Checks: every state file moves into `set-aside-<stamp>/` with its bytes; the store then
starts empty; the same stamp a second time (the next restart) moves nothing, so state
written under the new key stays; no stamp, or one that is not a plain name, does nothing.
"""

from __future__ import annotations

from pathlib import Path

from agent_runtime.state.aside import set_aside


def fill(directory: Path) -> dict[str, bytes]:
    files = {"checkpoint-00000003.agry": b"old", "journal-00000003.agry": b"older"}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return files


def test_state_files_move_aside_once_with_their_bytes(tmp_path: Path) -> None:
    files = fill(tmp_path)

    assert set_aside(tmp_path, "20261129-043000") == sorted(files)
    aside = tmp_path / "set-aside-20261129-043000"
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == files
    assert not list(tmp_path.glob("*.agry"))

    (tmp_path / "checkpoint-00000001.agry").write_bytes(b"new key")
    assert set_aside(tmp_path, "20261129-043000") == []
    assert (tmp_path / "checkpoint-00000001.agry").read_bytes() == b"new key"


def test_without_a_plain_stamp_nothing_moves(tmp_path: Path) -> None:
    fill(tmp_path)
    assert set_aside(tmp_path, "") == []
    assert set_aside(tmp_path, "../escape") == []
    assert len(list(tmp_path.glob("*.agry"))) == 2

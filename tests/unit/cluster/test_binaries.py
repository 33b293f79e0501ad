"""Finding the binaries: what is missing, and a clear reason when nothing can build them."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentry_cluster import binaries
from agentry_cluster.errors import CannotRunHere


def test_missing_lists_the_binaries_not_in_the_directory(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("")
    (tmp_path / "kubectl").write_text("")
    assert binaries.missing(tmp_path) == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-proxy",
        "helm",
        "coredns",
    ]


def test_without_binaries_and_without_go_the_reason_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binaries, "cache_dir", lambda: tmp_path / "bin")
    monkeypatch.setattr(binaries.shutil, "which", lambda _: None)
    with pytest.raises(CannotRunHere, match=r"missing in .*bin.*Go is not installed"):
        binaries.ensure()


def test_the_cache_directory_comes_from_the_build_script() -> None:
    assert binaries.cache_dir().name.startswith("v1.")

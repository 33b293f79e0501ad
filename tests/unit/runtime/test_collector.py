"""Once serving, start-up's objects are out of the collector's way and garbage still goes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from agent_runtime.collector import YOUNG_THRESHOLD, settle_for_serving


class Node:
    """A reference cycle's member, which only the cycle collector can free."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's collector as it was: the settings are global."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_what_exists_and_raises_the_young_threshold() -> None:
    before = Node()
    older = gc.get_threshold()
    settle_for_serving()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold()[1:] == older[1:]  # the older generations' left alone
    survivor = weakref.ref(before)
    del before
    gc.collect()
    assert survivor() is not None  # frozen: no collection walks it again


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_settling_are_still_collected() -> None:
    settle_for_serving()
    garbage = weakref.ref(Node())
    assert garbage() is not None
    gc.collect()
    assert garbage() is None

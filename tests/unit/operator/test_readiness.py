"""CatchUp, the state behind the operator's /readyz: unready until listed, then until each
listed Agent is handled; Agents handled before the list or deleted unseen do not block."""

from __future__ import annotations

from agentry_operator.readiness import CatchUp


def test_unready_until_the_agents_are_listed_even_with_none_pending() -> None:
    catch_up = CatchUp()
    assert not catch_up.ready
    assert "not been listed" in catch_up.describe()
    catch_up.expect([])
    assert catch_up.ready


def test_ready_once_every_listed_agent_was_handled() -> None:
    catch_up = CatchUp()
    catch_up.expect(["ns/a", "ns/b"])
    catch_up.handled("ns/a")
    assert not catch_up.ready
    assert catch_up.describe() == "not caught up: 1 Agent(s) not handled yet: ns/b"
    catch_up.handled("ns/b")
    assert catch_up.ready


def test_an_agent_handled_before_the_list_is_not_waited_for() -> None:
    catch_up = CatchUp()
    catch_up.handled("ns/a")
    catch_up.expect(["ns/a"])
    assert catch_up.ready


def test_an_agent_deleted_before_any_handler_saw_it_stops_blocking() -> None:
    catch_up = CatchUp()
    catch_up.expect(["ns/a", "ns/gone"])
    catch_up.handled("ns/a")
    catch_up.forget_gone(["ns/a"])
    assert catch_up.ready


def test_a_long_backlog_is_summarised() -> None:
    catch_up = CatchUp()
    catch_up.expect([f"ns/a{i}" for i in range(8)])
    assert catch_up.describe().endswith("ns/a4 and 3 more")

"""An address's events a second on a public server: the token bucket behind ui/event_limit.py's 429s."""

from __future__ import annotations

import pytest

from qa_core.ui import event_limit
from qa_core.ui.event_limit import EventBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_address_sends_a_burst_then_its_rate_and_others_are_untouched():
    clock = Clock()
    budget = EventBudget(2.0, clock)  # ten at once (BURST_S seconds' worth), then two a second
    assert [budget.take("a") for _ in range(11)] == [True] * 10 + [False]
    assert budget.take("b")  # another address has its own
    clock.now = 1.0
    assert [budget.take("a") for _ in range(3)] == [True, True, False]
    clock.now = 100.0
    assert sum(budget.take("a") for _ in range(20)) == 10  # never more than a burst saved up


def test_addresses_whose_budget_is_whole_again_are_forgotten(monkeypatch):
    monkeypatch.setattr(event_limit, "TRACKED_ADDRESSES", 3)
    clock = Clock()
    budget = EventBudget(1.0, clock)
    for address in "abc":
        budget.take(address)
    clock.now = 60.0  # all whole again
    budget.take("d")
    assert list(budget._budgets) == ["d"]


def test_a_rate_that_lets_nothing_through_is_refused_naming_the_variable():
    with pytest.raises(ValueError, match="QA_MAX_ADDRESS_EVENTS_PER_S must be above 0, got 0"):
        EventBudget(0.0)


def test_a_public_server_starts_room_for_one_address_s_bounds_and_as_much_again():
    """Gradio starts at most max_threads events at once, first come, first served: one address's calls waiting in
    their bounds (three kinds) must leave room for another visitor's to reach the turns."""
    from qa_core.fairness import ADDRESS_SESSIONS
    from qa_core.settings import Settings
    from qa_core.ui import app

    public = app.launch_options(Settings(public=True))
    assert public["max_threads"] == 2 * 3 * ADDRESS_SESSIONS * Settings().max_caller_requests
    assert [m.cls.__name__ for m in public["app_kwargs"]["middleware"]] == ["LimitEvents", "LimitBody"]
    local = app.launch_options(Settings())
    assert "max_threads" not in local and [m.cls.__name__ for m in local["app_kwargs"]["middleware"]] == ["LimitBody"]


def test_addresses_all_still_spending_are_forgotten_oldest_first_down_to_half(monkeypatch):
    """Found in review: with more addresses than are tracked, none whole again, every event looked over all of
    them; the least recently seen go, so the next look is many events away."""
    monkeypatch.setattr(event_limit, "TRACKED_ADDRESSES", 4)
    budget = EventBudget(1.0, Clock())  # the clock stands still: no budget fills up again
    for address in "abcde":
        budget.take(address)
    assert list(budget._budgets) == ["d", "e"]

"""A burst of identical alerts is sent once: who counts as identical, and how long a burst lasts.

The gate is Redis `SET key alert_id NX EX window`; here a dict with a clock stands in for those two
commands so the rule can be checked without a server (the real Redis path is exercised in
tests/integration/test_pushover_sim.py).
"""

from __future__ import annotations

from pm_arb_tasks.adapters.pushover import EMERGENCY_EXPIRE_SECONDS, EMERGENCY_RETRY_SECONDS, PushoverMessage
from pm_arb_tasks.services.alerts import COLLAPSE_WINDOW_SECONDS, burst_key, first_of_burst


class ClockedStore:
    """SET NX EX / GET semantics with an explicit clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.data: dict[str, tuple[str, float]] = {}

    def set(self, name: str, value: str, *, nx: bool = False, ex: int = 0) -> bool | None:
        live = name in self.data and self.data[name][1] > self.now
        if nx and live:
            return None
        self.data[name] = (value, self.now + ex)
        return True

    def get(self, name: str) -> str | None:
        value, expires = self.data.get(name, (None, 0.0))
        return value if expires > self.now else None


def key(message: str = "No worker consumes execute", **kw: str) -> str:
    fields = {"kind": "agent_dead", "title": "Queue execute has no consumer", "message": message, **kw}
    return burst_key(**fields)  # type: ignore[arg-type]


def test_identical_text_is_one_burst_and_any_difference_is_not() -> None:
    assert key() == key()
    assert key() == key(message="  No worker consumes execute \n")  # whitespace is not a difference
    assert key() != key(message="No worker consumes risk")
    assert key() != key(kind="recovered")
    assert key() != key(title="Queue risk has no consumer")


def test_same_dedupe_key_is_one_burst_whatever_the_text() -> None:
    assert key(dedupe_key="risk-halt-daily_loss") == key(message="other text", dedupe_key="risk-halt-daily_loss")
    assert key(dedupe_key="a") != key(dedupe_key="b")
    assert key(dedupe_key="a") != key()


def test_burst_sends_the_first_and_collapses_the_rest_within_the_window() -> None:
    store = ClockedStore()
    decisions = []
    for i in range(5):
        store.now = i * 5.0
        decisions.append(first_of_burst(store, key(), f"alert-{i}"))
    assert decisions == [True, False, False, False, False]


def test_after_the_window_a_new_burst_starts() -> None:
    store = ClockedStore()
    assert first_of_burst(store, key(), "first")
    store.now = COLLAPSE_WINDOW_SECONDS - 1
    assert not first_of_burst(store, key(), "second")
    store.now = COLLAPSE_WINDOW_SECONDS + 0.5
    assert first_of_burst(store, key(), "third")


def test_a_retried_alert_stays_first_of_its_burst() -> None:
    store = ClockedStore()
    assert first_of_burst(store, key(), "alert-1")
    assert first_of_burst(store, key(), "alert-1")  # its task retried after a database error
    assert not first_of_burst(store, key(), "alert-2")


def test_different_alerts_never_collapse_each_other() -> None:
    store = ClockedStore()
    assert first_of_burst(store, key(), "a")
    assert first_of_burst(store, key(message="No worker consumes risk"), "b")


def test_pushover_form_priorities() -> None:
    normal = PushoverMessage("t", "m", 0).form()
    assert normal == {"title": "t", "message": "m", "priority": "0"}
    emergency = PushoverMessage("t", "m", 2).form()
    assert emergency["retry"] == str(EMERGENCY_RETRY_SECONDS) and int(emergency["retry"]) >= 30
    assert emergency["expire"] == str(EMERGENCY_EXPIRE_SECONDS) and int(emergency["expire"]) <= 10800
    assert PushoverMessage("t", "m", 7).form()["priority"] == "2"
    assert PushoverMessage("t", "m", -9).form()["priority"] == "-2"
    long = PushoverMessage("x" * 400, "y" * 2000).form()
    assert len(long["title"]) == 250 and len(long["message"]) == 1024
    assert PushoverMessage("t", "").form()["message"]  # Pushover refuses an empty message

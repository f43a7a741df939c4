"""The watchdog's policy: one alert when an incident opens, one note when it clears, nothing between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pm_arb_tasks.celery_app import QUEUES
from pm_arb_tasks.services.alerts import CRITICAL, HIGH, NORMAL
from pm_arb_tasks.services.watchdog import (
    AlertSpec,
    Observation,
    Thresholds,
    WatchState,
    evaluate,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TH = Thresholds(tick_stale_seconds=30, book_stale_seconds=30, worker_silent_seconds=120, backlog_limit=100)
HEALTHY = {
    "oracle@h": {"oracle"},
    "markets@h": {"markets"},
    "scan@h": {"scan"},
    "risk@h": {"risk"},
    "execute@h": {"execute"},
    "persist@h": {"persist", "alert", "ops"},
}


def obs(now: datetime, workers: dict[str, set[str]] | None = None, halted: bool = False, **kw: object) -> Observation:
    workers = HEALTHY if workers is None else workers
    fields = {"backlog": dict.fromkeys(QUEUES, 0), "last_tick_at": now, "last_book_at": now, **kw}
    return Observation(
        workers={h: frozenset(q) for h, q in workers.items()}, halted=halted, **fields  # type: ignore[arg-type]
    )


def without(*hosts: str) -> dict[str, set[str]]:
    return {h: q for h, q in HEALTHY.items() if h not in hosts}


def run(steps: list[tuple[datetime, Observation]], state: WatchState | None = None) -> list[list[AlertSpec]]:
    state = state or WatchState()
    out = []
    for now, observation in steps:
        raised, state = evaluate(observation, state, now, TH)
        out.append(raised)
    return out


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_healthy_system_raises_nothing() -> None:
    assert run([(at(s), obs(at(s))) for s in (0, 30, 60)]) == [[], [], []]


def test_dead_execute_worker_alerts_once_and_recovers_once() -> None:
    steps = [(at(0), obs(at(0)))]
    steps += [(at(s), obs(at(s), without("execute@h"))) for s in (30, 60, 150, 300)]
    steps += [(at(330), obs(at(330))), (at(360), obs(at(360)))]
    results = run(steps)
    assert results[0] == []
    [dead] = results[1]
    assert (dead.kind, dead.priority, dead.title) == ("agent_dead", CRITICAL, "Queue execute has no consumer")
    assert "execute@h last seen 30 s ago" in dead.message
    assert results[2:5] == [[], [], []]  # ongoing; the silent worker is covered by the queue alert
    [note] = results[5]
    assert (note.kind, note.priority, note.title) == ("recovered", NORMAL, "Recovered: Queue execute has no consumer")
    assert results[6] == []
    assert note.alert_id != dead.alert_id


def test_alert_ids_are_stable_for_the_same_incident() -> None:
    first = run([(at(0), obs(at(0))), (at(30), obs(at(30), without("execute@h")))])
    again = run([(at(0), obs(at(0))), (at(30), obs(at(30), without("execute@h")))])
    assert first[1][0].alert_id == again[1][0].alert_id


def test_halted_executor_paused_on_purpose_is_not_an_incident() -> None:
    paused = {**HEALTHY, "execute@h": set()}  # the kill switch cancelled its consumer
    assert run([(at(0), obs(at(0), paused, halted=True))]) == [[]]
    # ...but a dead executor while halted still is.
    [[alert]] = run([(at(0), obs(at(0), without("execute@h"), halted=True))])
    assert alert.title == "Queue execute has no consumer"


def test_silent_worker_with_its_queues_still_served_alerts_after_two_minutes() -> None:
    two = {**HEALTHY, "persist@h2": {"persist", "alert", "ops"}}
    steps = [(at(0), obs(at(0), two))]
    steps += [(at(s), obs(at(s), HEALTHY)) for s in (60, 119, 121, 150)]
    results = run(steps)
    assert results[:3] == [[], [], []]
    [silent] = results[3]
    assert (silent.title, silent.priority) == ("Worker persist@h2 silent", CRITICAL)
    assert results[4] == []


def test_worker_replaced_by_same_role_closes_its_incident() -> None:
    two = {**HEALTHY, "persist@h2": {"persist", "alert", "ops"}}
    steps = [(at(0), obs(at(0), two)), (at(200), obs(at(200), HEALTHY))]
    replaced = {**without("persist@h"), "persist@h3": {"persist", "alert", "ops"}}
    steps.append((at(230), obs(at(230), replaced)))
    results = run(steps)
    assert [a.title for a in results[1]] == ["Worker persist@h2 silent"]
    assert [a.title for a in results[2]] == ["Recovered: Worker persist@h2 silent"]


def test_stale_data_alerts_high_and_not_twice() -> None:
    steps = [(at(s), obs(at(s), last_tick_at=at(0))) for s in (0, 20, 40, 60)]
    steps.append((at(70), obs(at(70))))
    results = run(steps)
    assert results[:2] == [[], []]
    [stale] = results[2]
    assert (stale.kind, stale.priority, stale.title) == ("data_stale", HIGH, "Oracle ticks stale")
    assert results[3] == []
    assert [a.title for a in results[4]] == ["Recovered: Oracle ticks stale"]


def test_no_data_ever_is_stale_once_the_watchdog_has_waited() -> None:
    steps = [(at(s), obs(at(s), last_book_at=None)) for s in (0, 29, 31)]
    results = run(steps)
    assert results[:2] == [[], []]
    assert [a.title for a in results[2]] == ["Order books stale"]
    assert "none since the watchdog started" in results[2][0].message


def test_stale_data_of_a_dead_queue_is_covered_by_the_queue_alert() -> None:
    steps = [(at(0), obs(at(0))), (at(60), obs(at(60), without("oracle@h"), last_tick_at=at(0)))]
    results = run(steps)
    assert [a.title for a in results[1]] == ["Queue oracle has no consumer"]


def test_backlog_over_limit_alerts_except_a_paused_executor() -> None:
    backlog = {**dict.fromkeys(QUEUES, 0), "scan": 150, "execute": 150}
    [running] = run([(at(0), obs(at(0), backlog=backlog))])
    assert sorted((a.title, a.priority) for a in running) == [
        ("Queue execute backlog", HIGH), ("Queue scan backlog", HIGH)
    ]
    [halted] = run([(at(0), obs(at(0), backlog=backlog, halted=True))])
    assert [a.title for a in halted] == ["Queue scan backlog"]


def test_state_survives_json_round_trip_and_garbage_starts_afresh() -> None:
    _, state = evaluate(obs(at(30), without("execute@h")), WatchState(), at(30), TH)
    restored = WatchState.from_json(state.to_json())
    assert restored == state
    assert evaluate(obs(at(60), without("execute@h")), restored, at(60), TH)[0] == []
    assert WatchState.from_json("{not json") == WatchState()
    assert WatchState.from_json(None) == WatchState()


def test_long_silent_worker_is_forgotten_with_a_closing_note() -> None:
    th = Thresholds(worker_silent_seconds=120, forget_worker_seconds=600)
    two = {**HEALTHY, "persist@h2": {"persist", "alert", "ops"}}
    _, state = evaluate(obs(at(0), two), WatchState(), at(0), th)
    raised, state = evaluate(obs(at(200), HEALTHY), state, at(200), th)
    assert [a.title for a in raised] == ["Worker persist@h2 silent"]
    raised, state = evaluate(obs(at(700), HEALTHY), state, at(700), th)
    assert [(a.kind, a.title) for a in raised] == [("incident_closed", "Closed: Worker persist@h2 silent")]
    assert "persist@h2" not in state.workers


def test_an_open_incident_stays_quiet_when_its_queue_dies_too() -> None:
    steps = [(at(0), obs(at(0))), (at(40), obs(at(40), last_tick_at=at(0)))]
    steps += [(at(70), obs(at(70), without("oracle@h"), last_tick_at=at(0)))]
    steps += [(at(100), obs(at(100)))]
    results = run(steps)
    assert [a.title for a in results[1]] == ["Oracle ticks stale"]
    assert [a.title for a in results[2]] == ["Queue oracle has no consumer"]
    assert sorted(a.title for a in results[3]) == [
        "Recovered: Oracle ticks stale", "Recovered: Queue oracle has no consumer"
    ]

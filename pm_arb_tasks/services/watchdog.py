"""The watchdog (beat, every 30 s): are the agents alive and is the data fresh?

`evaluate` is the whole policy and does no I/O: observations + the previous incident state +
now -> the alerts to raise and the next state. Each problem is an incident keyed by what is
wrong (`queue:execute`, `worker:persist@host`, `data:oracle`, ...): it alerts once when it
opens and sends one recovery note when it clears. `run` gathers the observations (worker
broadcast, Redis queue lengths, data ages, halt flag), keeps the state in Redis under a lock,
and raises the alerts with ids derived from the incident, so nothing alerts twice.

The watchdog keeps watching while the database is down (a worker may die during the outage too):
its alerts then go straight to Pushover and wait in Redis to be recorded once the database is back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from redis.exceptions import LockError

from pm_arb_tasks.celery_app import QUEUES, app
from pm_arb_tasks.services import alerts
from pm_arb_tasks.settings import Settings, get_settings
from pm_arb_tasks.state.redis_client import get_redis

log = logging.getLogger(__name__)

STATE_KEY = "pm_arb:watchdog:state"
DB_DOWN_KEY = "pm_arb:watchdog:database_down_since"
UNRECORDED_KEY = "pm_arb:watchdog:unrecorded"  # alerts sent during a database outage, oldest first
LOCK_KEY = "pm_arb:watchdog:lock"
LOCK_SECONDS = 25
WORKER_SILENT_SECONDS = 120
FORGET_WORKER_SECONDS = 6 * 3600
BACKLOG_LIMIT = 500
BROADCAST_TIMEOUT = 1.0
CONFIRM_TIMEOUT = 2.0
EXECUTE_QUEUE = "execute"
# Kombu's Redis transport keeps priority messages in sibling lists named queue + sep + step.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


@dataclass(frozen=True)
class Observation:
    """One look at the system; `workers` maps each worker that answered to the queues it consumes."""

    workers: Mapping[str, frozenset[str]]
    backlog: Mapping[str, int]
    last_tick_at: datetime | None
    last_book_at: datetime | None
    halted: bool
    queues: tuple[str, ...] = QUEUES

    def consumers(self, queue: str) -> frozenset[str]:
        return frozenset(host for host, queues in self.workers.items() if queue in queues)


@dataclass(frozen=True)
class Thresholds:
    tick_stale_seconds: float = 30
    book_stale_seconds: float = 30
    worker_silent_seconds: float = WORKER_SILENT_SECONDS
    forget_worker_seconds: float = FORGET_WORKER_SECONDS
    backlog_limit: int = BACKLOG_LIMIT

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """Stale means ten missed polls, but never less than 30 s (beat jitter, slow upstreams)."""
        return cls(
            tick_stale_seconds=max(30.0, 10 * settings.oracle_poll_seconds),
            book_stale_seconds=max(30.0, 10 * settings.book_poll_seconds),
        )


@dataclass(frozen=True)
class Problem:
    kind: str
    priority: int
    title: str
    message: str
    covered: bool = False  # a consequence of a queue without consumer: keeps an open incident, opens none


@dataclass(frozen=True)
class Incident:
    opened_at: datetime
    title: str


@dataclass(frozen=True)
class SeenWorker:
    last_seen: datetime
    queues: frozenset[str]
    first_seen: datetime


@dataclass(frozen=True)
class WatchState:
    started_at: datetime | None = None
    incidents: Mapping[str, Incident] = field(default_factory=dict)
    workers: Mapping[str, SeenWorker] = field(default_factory=dict)

    def to_json(self) -> str:
        incidents = {k: {"opened_at": _iso(i.opened_at), "title": i.title} for k, i in self.incidents.items()}
        workers = {
            h: {"last_seen": _iso(w.last_seen), "first_seen": _iso(w.first_seen), "queues": sorted(w.queues)}
            for h, w in self.workers.items()
        }
        return json.dumps({"started_at": _iso(self.started_at), "incidents": incidents, "workers": workers})

    @classmethod
    def from_json(cls, raw: str | None) -> WatchState:
        """An unreadable state starts afresh: at worst an ongoing incident alerts once more."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                started_at=_parse(data.get("started_at")),
                incidents={
                    k: Incident(datetime.fromisoformat(v["opened_at"]), str(v["title"]))
                    for k, v in data.get("incidents", {}).items()
                },
                workers={
                    h: SeenWorker(
                        datetime.fromisoformat(v["last_seen"]), frozenset(v["queues"]),
                        datetime.fromisoformat(v["first_seen"]),
                    )
                    for h, v in data.get("workers", {}).items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("watchdog state unreadable (%s); starting afresh", exc)
            return cls()


@dataclass(frozen=True)
class AlertSpec:
    alert_id: str
    kind: str
    priority: int
    title: str
    message: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def role(hostname: str) -> str:
    """`execute@host` -> `execute`: a worker restarted elsewhere (new container) keeps its role."""
    return hostname.split("@", 1)[0]


def replaced(host: str, seen: SeenWorker, live: Mapping[str, SeenWorker]) -> bool:
    """A worker of the same role that first appeared after this one fell silent took its place
    (a container restarted under a new hostname); a same-role worker that was there all along did not."""
    return any(
        role(other) == role(host) and other != host and w.first_seen > seen.last_seen for other, w in live.items()
    )


def track_workers(
    previous: Mapping[str, SeenWorker], obs: Observation, now: datetime, th: Thresholds
) -> dict[str, SeenWorker]:
    """Workers seen now, plus silent ones neither replaced nor silent long enough to forget."""
    live = {
        host: SeenWorker(now, frozenset(queues), previous[host].first_seen if host in previous else now)
        for host, queues in obs.workers.items()
    }
    tracked = dict(live)
    for host, seen in previous.items():
        if host in live or replaced(host, seen, live):
            continue
        if (now - seen.last_seen).total_seconds() <= th.forget_worker_seconds:
            tracked[host] = seen
    return tracked


def find_problems(obs: Observation, workers: Mapping[str, SeenWorker], started_at: datetime, now: datetime,
                  th: Thresholds) -> dict[str, Problem]:
    """Everything wrong right now, keyed by incident. An executor paused by the kill switch (halted,
    worker alive, consumer cancelled) and its growing queue are intended, not incidents."""
    problems: dict[str, Problem] = {}
    paused_executor = obs.halted and any(role(h) == EXECUTE_QUEUE for h in obs.workers)
    for queue in obs.queues:
        if obs.consumers(queue) or (queue == EXECUTE_QUEUE and paused_executor):
            continue
        gone = sorted(h for h, w in workers.items() if queue in w.queues and h not in obs.workers)
        last = "; ".join(f"{h} last seen {_ago((now - workers[h].last_seen).total_seconds())} ago" for h in gone)
        problems[f"queue:{queue}"] = Problem(
            "agent_dead", alerts.CRITICAL, f"Queue {queue} has no consumer",
            f"No worker consumes {queue} (backlog {obs.backlog.get(queue, 0)}). {last or 'No worker seen on it.'}",
        )
    for host, seen in workers.items():
        silent = (now - seen.last_seen).total_seconds()
        if host not in obs.workers and silent > th.worker_silent_seconds:
            problems[f"worker:{host}"] = Problem(
                "agent_dead", alerts.CRITICAL, f"Worker {host} silent",
                f"{host} ({', '.join(sorted(seen.queues))}) has not answered for {_ago(silent)}",
                covered=any(f"queue:{q}" in problems for q in seen.queues),
            )
    for queue in obs.queues:
        backlog = obs.backlog.get(queue, 0)
        expected = queue == EXECUTE_QUEUE and obs.halted  # paused on purpose; stale requests expire
        if backlog > th.backlog_limit and not expected:
            problems[f"backlog:{queue}"] = Problem(
                "queue_backlog", alerts.HIGH, f"Queue {queue} backlog",
                f"{backlog} messages waiting in {queue} (limit {th.backlog_limit})",
                covered=f"queue:{queue}" in problems,
            )
    for key, what, queue, at, limit in (
        ("data:oracle", "Oracle ticks", "oracle", obs.last_tick_at, th.tick_stale_seconds),
        ("data:books", "Order books", "markets", obs.last_book_at, th.book_stale_seconds),
    ):
        age = (now - (at or started_at)).total_seconds()
        if age > limit:
            last = f"last update {_ago(age)} ago" if at else f"none since the watchdog started {_ago(age)} ago"
            problems[key] = Problem(
                "data_stale", alerts.HIGH, f"{what} stale", f"{last} (limit {_ago(limit)})",
                covered=f"queue:{queue}" in problems,
            )
    return problems


def incident_alert_id(key: str, opened_at: datetime, suffix: str = "") -> str:
    digest = hashlib.sha256(f"{key}|{opened_at.isoformat()}".encode()).hexdigest()[:24]
    return f"wd-{digest}{suffix}"


def evaluate(
    obs: Observation, previous: WatchState, now: datetime, th: Thresholds
) -> tuple[list[AlertSpec], WatchState]:
    """The alerts to raise now and the state to keep: one alert per new incident, one note per cleared one.

    A problem that only follows from a queue without consumer (its worker silent, its data stale,
    its backlog growing) opens no incident of its own, and one already open stays open quietly.
    """
    started_at = previous.started_at or now
    workers = track_workers(previous.workers, obs, now, th)
    problems = find_problems(obs, workers, started_at, now, th)
    raised: list[AlertSpec] = []
    incidents: dict[str, Incident] = {}
    for key, problem in problems.items():
        incident = previous.incidents.get(key)
        if incident is None and problem.covered:
            continue  # the queue alert already says it; no second alert for one cause
        if incident is None:
            incident = Incident(now, problem.title)
            raised.append(
                AlertSpec(incident_alert_id(key, now), problem.kind, problem.priority, problem.title, problem.message)
            )
        incidents[key] = incident
    for key, incident in previous.incidents.items():
        if key not in problems:
            raised.append(_closing_note(key, incident, previous.workers, workers, obs, now))
    return raised, WatchState(started_at, incidents, workers)


def _closing_note(
    key: str,
    incident: Incident,
    before: Mapping[str, SeenWorker],
    workers: Mapping[str, SeenWorker],
    obs: Observation,
    now: datetime,
) -> AlertSpec:
    kind, how = "recovered", "cleared"
    host = key.removeprefix("worker:")
    if key.startswith("worker:") and host not in obs.workers and host in before:
        live = {h: w for h, w in workers.items() if h in obs.workers}
        if replaced(host, before[host], live):
            how = "replaced by a worker of the same role"
        else:
            kind, how = "incident_closed", "no longer tracked (silent too long)"
    return AlertSpec(
        incident_alert_id(key, incident.opened_at, "-ok"), kind, alerts.NORMAL,
        f"Recovered: {incident.title}" if kind == "recovered" else f"Closed: {incident.title}",
        f"{incident.title}: {how} after {_ago((now - incident.opened_at).total_seconds())}",
    )


# I/O: observing the system and keeping the state.


def active_queues(timeout: float = BROADCAST_TIMEOUT) -> dict[str, frozenset[str]]:
    """Ask every worker which queues it consumes; a worker that does not answer in time is absent."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {host: frozenset(q.get("name", "") for q in queues or []) for host, queues in replies.items()}


def observed_workers() -> dict[str, frozenset[str]]:
    """One broadcast, confirmed by a slower second one when a queue looks unattended."""
    workers = active_queues()
    if any(not any(q in queues for queues in workers.values()) for q in QUEUES):
        workers = {**workers, **active_queues(CONFIRM_TIMEOUT)}
    return workers


def queue_backlogs(queues: tuple[str, ...] = QUEUES) -> dict[str, int]:
    """Messages waiting per queue: the list named after the queue plus its priority siblings."""
    pipe = get_redis().pipeline(transaction=False)
    for queue in queues:
        for key in (queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS)):
            pipe.llen(key)
    lengths = pipe.execute()
    per_queue = 1 + len(PRIORITY_STEPS)
    return {q: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, q in enumerate(queues)}


def data_times() -> tuple[datetime | None, datetime | None]:
    """When the oracle last produced ticks and the books were last stored (None: never)."""
    from pm_arb_tasks.state.market_data import last_poll

    return last_poll("oracle"), last_poll("books")


def observe() -> Observation:
    """An unreadable halt flag (database down) counts as halted, as the executor treats it: a
    paused executor and its growing queue are then expected, while a dead one is still reported."""
    from pm_arb_tasks.state.halt import is_halted

    last_tick_at, last_book_at = data_times()
    return Observation(
        workers=observed_workers(), backlog=queue_backlogs(), last_tick_at=last_tick_at,
        last_book_at=last_book_at, halted=is_halted(),
    )


def load_state() -> WatchState:
    return WatchState.from_json(get_redis().get(STATE_KEY))


def database_reachable() -> bool:
    from sqlalchemy import text

    from pm_arb_tasks.db.session import get_engine

    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # any failure to answer is the incident itself
        log.error("watchdog: database unreachable: %s", type(exc).__name__)
        return False


def notice_database_outage(now: datetime) -> None:
    """Open the database incident once, from the watchdog or from any stage whose write failed, and
    tell the operator straight away (alerts are recorded in the unreachable database)."""
    try:
        first = get_redis().set(DB_DOWN_KEY, now.isoformat(), nx=True)
    except Exception:  # Redis is down too: the log line below is all that can be done
        first = True
    if first:
        incident = AlertSpec(
            alert_id=incident_alert_id("database", now), kind="database_down", priority=alerts.CRITICAL,
            title="Database unreachable",
            message=f"PostgreSQL does not answer since {now:%H:%M:%S} UTC: trade records wait in the persist "
            "queue, no order is placed (the executor cannot claim requests). They land once it is back.",
        )
        try:
            hold_unrecorded(incident)
        except Exception:  # Redis is down too: the operator has been told if Pushover could be reached
            log.critical("could not keep the database incident for recording")


def hold_unrecorded(spec: AlertSpec) -> None:
    """During a database outage: tell the operator now, and keep the alert (and whether Pushover
    took it) in Redis until `record_held` can write it."""
    delivered = alerts.send_unrecorded(priority=spec.priority, title=spec.title, message=spec.message)
    get_redis().rpush(UNRECORDED_KEY, json.dumps({**asdict(spec), "delivered": delivered}))


def record_held() -> None:
    """Record the outage's alerts, oldest first. Each leaves Redis only once written, and alert ids
    make a second write of the same one a no-op, so a pass that dies half-way loses nothing."""
    redis = get_redis()
    while (held := redis.lindex(UNRECORDED_KEY, 0)) is not None:
        alerts.record_unrecorded(**json.loads(held))
        redis.lpop(UNRECORDED_KEY)


def watch_database(now: datetime) -> bool:
    """The database outage incident: alerts are recorded in the database, so while it is down the
    alert goes straight to Pushover; the incident, the alerts held meanwhile and the incident's end
    are recorded once it answers again. Returns whether the database answers."""
    if not database_reachable():
        notice_database_outage(now)
        return False
    redis = get_redis()
    since = redis.get(DB_DOWN_KEY)
    opened = datetime.fromisoformat(since) if since is not None else None
    record_held()  # the incident's own alert first, as sent if Pushover took it: one notification
    if opened is not None:
        alerts.raise_alert(
            kind="database_down", priority=alerts.NORMAL, title="Database reachable again",
            message=f"PostgreSQL answers again after {_ago((now - opened).total_seconds())}.",
            alert_id=incident_alert_id("database", opened, "recovered"),
        )
        redis.delete(DB_DOWN_KEY)
    return True


def run(now: datetime | None = None) -> list[AlertSpec]:
    """One watchdog pass; overlapping passes are skipped (the lock), so an incident opens once."""
    lock = get_redis().lock(LOCK_KEY, timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        log.info("watchdog pass already running; skipped")
        return []
    try:
        now = now or datetime.now(UTC)
        recordable = watch_database(now)
        obs = observe()
        raised, state = evaluate(obs, load_state(), now, Thresholds.from_settings(get_settings()))
        for spec in raised:
            if recordable:
                alerts.raise_alert(
                    kind=spec.kind, priority=spec.priority, title=spec.title, message=spec.message,
                    alert_id=spec.alert_id,
                )
            else:
                hold_unrecorded(spec)
        get_redis().set(STATE_KEY, state.to_json())
        return raised
    finally:
        try:
            lock.release()
        except LockError:  # expired during a slow pass; the next pass takes it again
            log.debug("watchdog lock already expired")

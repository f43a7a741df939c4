"""The one Celery app: queues, explicit routes, and the reliability settings the invariants need.

- JSON only, so a message is readable in Flower and cannot smuggle a pickled object.
- Late acks and reject-on-worker-lost are set on the tasks that must survive a crash (execute,
  persist); the broker's visibility timeout (BROKER_VISIBILITY_TIMEOUT_SECONDS, 30 s) is how long
  an unacked message from a killed worker stays away, and it is swept for every few seconds
  (kombu's own sweep runs every 100 s, which would keep such an order away for minutes).
  A message must never come back while its first delivery still runs: the default time limits
  shrink under a short timeout, and a worker refuses to start when a late-acked task's own limit
  or a retry delay could outlast it (`redelivery_problems`).
- Every beat entry carries `expires`, so a backlog of polls is dropped rather than piled up.
- Every task's return value is shown cut short (`ProductTask`).
- Only workers import the task modules (`TASK_MODULES_SETTING`, on `celeryd_init`): beat sends its
  entries by name and Flower reads task names from events, so neither holds the services, the
  database layer or the venue SDK in memory (about 25-35 MB each, see BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init, celeryd_init, worker_init
from kombu import Queue

from pm_arb_tasks.adapters import broker
from pm_arb_tasks.settings import settings_or_exit

QUEUES = ("oracle", "markets", "scan", "risk", "execute", "persist", "alert", "ops")
VISIBILITY_VARIABLE = "BROKER_VISIBILITY_TIMEOUT_SECONDS"
DEFAULT_SOFT_TIME_LIMIT, DEFAULT_TIME_LIMIT = 20, 25  # for tasks that set none, when the timeout allows
# A late-acked task's hard limit ends at least this long before its message could be handed out
# again: the worker still has to notice the end and send the ack.
REDELIVERY_MARGIN_SECONDS = 5
TASK_MODULES = (
    "pm_arb_tasks.tasks.pipeline",
    "pm_arb_tasks.tasks.marketdata",
    "pm_arb_tasks.tasks.scanning",
    "pm_arb_tasks.tasks.venue_ops",
    "pm_arb_tasks.tasks.ops",
)
TASK_MODULES_SETTING = "pm_arb_task_modules"  # the app's own setting: what its workers import
STACK_STARTED_TASK = "pm_arb.ops.stack_started"


def route_for(task_name: str) -> str:
    """Tasks are named `pm_arb.<queue>.<action>`; the queue is part of the stable name."""
    parts = task_name.split(".")
    if len(parts) < 3 or parts[0] != "pm_arb" or parts[1] not in QUEUES:
        raise ValueError(f"task name {task_name!r} does not follow pm_arb.<queue>.<action>")
    return parts[1]


def _route(name: str, args: object, kwargs: object, options: object, task: object = None, **kw: object):
    if name.startswith("pm_arb."):
        return {"queue": route_for(name)}
    return None


def default_time_limits(visibility: int) -> tuple[int, int]:
    """(soft, hard) limits for tasks that set none: 20/25 s, shortened under a short visibility
    timeout so that a late-acked risk or persist task has ended before its message can return."""
    hard = max(min(DEFAULT_TIME_LIMIT, visibility - REDELIVERY_MARGIN_SECONDS), 2)
    return max(hard - (DEFAULT_TIME_LIMIT - DEFAULT_SOFT_TIME_LIMIT), 1), hard


def restore_interval(visibility: int) -> float:
    """Seconds between sweeps for messages unacked longer than `visibility`: a tenth of it, so a
    killed worker's message is back within 10 % of the timeout (kombu's default is 100 s)."""
    return max(visibility / 10, 1.0)


@dataclass(frozen=True)
class Overrun:
    """A task that can keep its message unacknowledged for `seconds` after delivery."""

    task: str
    seconds: float
    why: str


def redelivery_problems(tasks: Iterable[Task], visibility: int, default_time_limit: float) -> list[Overrun]:
    """The tasks whose message Redis could hand to a second worker while the first still has it.

    Redis redelivers a message left unacknowledged for `visibility` seconds. A late-acked task is
    acknowledged only when it ends, so its hard time limit must end REDELIVERY_MARGIN_SECONDS
    before that. A task retried with a countdown holds the retry's message unacknowledged while it
    waits (whether it acks late or not), and a late-acked one then runs it to the end before the
    ack: the longest countdown, plus the hard limit when it acks late, must fit too.
    """
    budget = visibility - REDELIVERY_MARGIN_SECONDS
    found = []
    for task in tasks:
        if not task.name.startswith("pm_arb."):
            continue
        limit = task.time_limit or default_time_limit
        run = limit if task.acks_late else 0
        if getattr(task, "autoretry_for", ()):
            delay = task.retry_backoff_max if getattr(task, "retry_backoff", False) else task.default_retry_delay
            if delay + run > budget:
                why = "its longest retry countdown, waited out unacknowledged" + (
                    f", then up to {limit:g} s of run before the ack" if run else ""
                )
                found.append(Overrun(task.name, delay + run, why))
        elif run > budget:
            found.append(Overrun(task.name, limit, "its hard time limit; it is acknowledged when it ends"))
    return found


def check_redelivery(app: Celery) -> None:
    """Refuse (ValueError naming the variable) a visibility timeout that a task could outlast."""
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    problems = redelivery_problems(app.tasks.values(), visibility, app.conf.task_time_limit)
    if problems:
        needed = max(p.seconds for p in problems) + REDELIVERY_MARGIN_SECONDS
        details = "; ".join(f"{p.task}: {p.seconds:g} s ({p.why})" for p in problems)
        raise ValueError(
            f"{VISIBILITY_VARIABLE}={visibility} is too short: Redis would give a message to a second worker "
            f"while the first still works on it ({details}); set {VISIBILITY_VARIABLE} to at least {needed:g}"
        )


class ProductTask(Task):
    """The base of every task of the app.

    Celery writes a repr of every return value (the worker's "succeeded" line, Flower's result
    column) in the pool process, right after the chain's next step is published. At its default
    length (1,024 characters) that walk of a decision or a result takes 0.3-0.4 ms of CPU, which
    the next stage's worker, waking on the same two cores, waits behind; the first
    120 characters still name the request (its id comes first), and the rows in the database
    hold the whole outcome.
    """

    resultrepr_maxsize = 120


def make_app(task_modules: Sequence[str] = TASK_MODULES) -> Celery:
    """The configured app; `task_modules` are imported by its workers only (`_import_task_modules`)."""
    settings = settings_or_exit()  # `celery -A pm_arb_tasks ...` with a bad value: one line, no traceback
    visibility = settings.broker_visibility_timeout_seconds
    soft_time_limit, time_limit = default_time_limits(visibility)
    broker.install()  # kombu's Redis transport with its broker-loss crash fixed (adapters/broker.py)
    app = Celery("pm_arb_tasks", broker=settings.redis_url, task_cls=ProductTask)
    app.conf.update(
        {TASK_MODULES_SETTING: list(task_modules)},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_queues=[Queue(q, routing_key=q) for q in QUEUES],
        task_default_queue="ops",
        task_routes=(_route,),
        task_create_missing_queues=False,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 60, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            "visibility_timeout": visibility,
            "unacked_restore_interval": restore_interval(visibility),
            "unacked_restore_throttle": 1,  # every sweep looks (kombu's default: every 10th)
            "fanout_prefix": True,
            "fanout_patterns": True,
            "socket_keepalive": True,
            "health_check_interval": 10,
        },
        task_soft_time_limit=soft_time_limit,
        task_time_limit=time_limit,
        timezone="UTC",
        enable_utc=True,
        beat_scheduler="pm_arb_tasks.scheduler:ResilientRedBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix="pm_arb:redbeat:",
        redbeat_lock_timeout=10,  # beat extends it every second; a crashed beat is replaced within 10 s
        beat_max_loop_interval=1,
    )
    from beat_schedule import build_schedule

    app.conf.beat_schedule = build_schedule(settings)
    return app


app = make_app()


def import_task_modules(celery_app: Celery) -> None:
    """Register `celery_app`'s tasks: what its workers do as they start."""
    for module in celery_app.conf.get(TASK_MODULES_SETTING, ()):
        import_module(module)


@celeryd_init.connect
def _import_task_modules(instance: Any = None, **_: Any) -> None:
    """A worker (and only a worker: `celeryd_init` is the worker command's own signal) imports its
    app's task modules, before its start-up checks (`worker_init`) and before it consumes. Celery's
    `include` would be imported by beat and Flower too, which never run a task."""
    import_task_modules(instance.app)


@beat_init.connect
def _announce_start(**_: Any) -> None:
    """Exactly one beat runs per stack, so its start is the stack's start: an ops worker records
    the alert and hands it to delivery (`pm_arb.ops.stack_started`). The scheduler starts even if
    the request cannot be sent."""
    try:
        app.send_task(STACK_STARTED_TASK, args=[socket.gethostname(), settings_or_exit().trading_mode])
    except Exception as exc:
        logging.getLogger(__name__).error("could not ask for the stack-started alert: %s", exc)


@worker_init.connect
def _refuse_early_redelivery(**_: Any) -> None:
    """Before any other start-up check: a worker whose messages could be delivered twice by the
    broker's clock alone must not start (SystemExit, as Celery swallows a handler's exceptions)."""
    try:
        check_redelivery(app)
    except ValueError as exc:
        message = f"worker refuses to start: {exc}"
        logging.getLogger(__name__).critical(message)
        raise SystemExit(message) from None


from pm_arb_tasks import worker_hooks  # noqa: E402,F401 - registers the worker signal handlers

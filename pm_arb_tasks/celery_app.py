"""The one Celery app: queues, explicit routes, and the reliability settings the invariants need.

- JSON only, so a message is readable in Flower and cannot smuggle a pickled object.
- Late acks and reject-on-worker-lost are set on the tasks that must survive a crash (execute,
  persist); the broker's visibility timeout is 30 s so an unacked message from a killed worker
  comes back in seconds, and every task's hard time limit stays well below it.
- Every beat entry carries `expires`, so a backlog of polls is dropped rather than piled up.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from pm_arb_tasks.settings import get_settings

QUEUES = ("oracle", "markets", "scan", "risk", "execute", "persist", "alert", "ops")
VISIBILITY_TIMEOUT_SECONDS = 30
TASK_MODULES = (
    "pm_arb_tasks.tasks.pipeline",
    "pm_arb_tasks.tasks.marketdata",
    "pm_arb_tasks.tasks.scanning",
    "pm_arb_tasks.tasks.venue_ops",
    "pm_arb_tasks.tasks.ops",
)


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


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("pm_arb_tasks", broker=settings.redis_url, include=list(TASK_MODULES))
    app.conf.update(
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
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "fanout_prefix": True,
            "fanout_patterns": True,
            "socket_keepalive": True,
            "health_check_interval": 10,
        },
        task_soft_time_limit=20,
        task_time_limit=25,
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

from pm_arb_tasks import worker_hooks  # noqa: E402,F401 - registers the worker signal handlers

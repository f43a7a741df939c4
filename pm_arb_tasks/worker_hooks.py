"""Worker life-cycle hooks: refuse to start on an unmigrated database or (live executor) on
credentials the venue rejects, mask secrets in logs, fresh database connections per forked child,
and an executor that starts paused while the halt flag is set.

The database layer is imported inside the handlers, which only workers fire: beat and Flower load
this module with the app and never need SQLAlchemy.

Celery logs and swallows exceptions raised by signal handlers, so a failed start-up check exits
the process explicitly: a worker that cannot work safely must not look alive.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery.signals import (
    after_setup_logger,
    worker_before_create_process,
    worker_init,
    worker_process_init,
    worker_ready,
)

from pm_arb_tasks.security import install_log_redaction, redact

log = logging.getLogger(__name__)
EXECUTE_QUEUE = "execute"


def _consumes_execute(queues: object) -> bool:
    return EXECUTE_QUEUE in {getattr(q, "name", q) for q in (queues or ())}  # type: ignore[attr-defined]


@after_setup_logger.connect
def _redact_logs(**_: Any) -> None:
    install_log_redaction()


@worker_init.connect
def _start_up_checks(sender: Any = None, **_: Any) -> None:
    install_log_redaction()
    from pm_arb_tasks.db.migrate import ensure_migrated
    from pm_arb_tasks.db.session import get_engine, reset_engines

    try:
        ensure_migrated(get_engine())
        reset_engines()
        if sender is not None and _consumes_execute(sender.app.amqp.queues.consume_from.values()):
            from pm_arb_tasks.services.execution import current_venue

            current_venue()  # the live venue validates its credentials against the CLOB here
    except Exception as exc:
        message = redact(f"worker refuses to start: {exc}")
        log.critical(message)
        raise SystemExit(message) from None


@worker_before_create_process.connect
def _keep_the_parent_heap_shared(**_: Any) -> None:
    """Just before the prefork pool forks a child: every object the parent holds goes to the
    garbage collector's permanent generation. A child's collections then never walk, and so never
    write to, the pages it shares with its parent, which copy-on-write would copy into the child
    one by one until each child held its own copy of the parent's heap. Collected first: garbage
    frozen with the rest would never be freed."""
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    from pm_arb_tasks.db.session import reset_engines

    reset_engines()


@worker_ready.connect
def _start_paused_when_halted(sender: Any = None, **_: Any) -> None:
    """An executor (re)started while halted does not consume until `pm-arb resume`."""
    consumer = sender
    if consumer is None or consumer.task_consumer is None or not _consumes_execute(consumer.task_consumer.queues):
        return
    from pm_arb_tasks.state.halt import is_halted

    if is_halted():
        log.warning("halt flag is set: executor starts paused (run `pm-arb resume` to trade)")
        consumer.cancel_task_queue(EXECUTE_QUEUE)

"""Worker life-cycle hooks: refuse to start on an unmigrated database, mask secrets in logs,
fresh database connections per forked child, and an executor that starts paused when halted."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, worker_init, worker_process_init, worker_ready

from pm_arb_tasks.db.migrate import ensure_migrated
from pm_arb_tasks.db.session import get_engine, reset_engines
from pm_arb_tasks.security import install_log_redaction

log = logging.getLogger(__name__)
EXECUTE_QUEUE = "execute"


@after_setup_logger.connect
def _redact_logs(**_: Any) -> None:
    install_log_redaction()


@worker_init.connect
def _check_database(**_: Any) -> None:
    """Raises DatabaseNotMigrated, which stops the worker with the command that fixes it."""
    install_log_redaction()
    ensure_migrated(get_engine())
    reset_engines()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    reset_engines()


@worker_ready.connect
def _executor_checks(sender: Any = None, **_: Any) -> None:
    """An executor (re)started while halted does not consume; live credentials fail fast."""
    consumer = sender
    queues = {q.name for q in consumer.task_consumer.queues} if consumer and consumer.task_consumer else set()
    if EXECUTE_QUEUE not in queues:
        return
    from pm_arb_tasks.services.execution import current_venue
    from pm_arb_tasks.state.halt import is_halted

    current_venue()  # the live venue validates its credentials here
    if is_halted():
        log.warning("halt flag is set: executor starts paused (run `pm-arb resume` to trade)")
        consumer.cancel_task_queue(EXECUTE_QUEUE)

"""The kill switch (DESIGN.md invariant 3): a durable halt flag plus the executor's consumer.

`stop` sets the flag *first*, so even a broadcast that reaches no worker leaves the executor
unable to place anything; then it cancels the execute consumer so nothing more is reserved.
`resume` clears the flag and re-adds the consumer on the execute workers only. Requests queued
meanwhile have passed their deadline and are discarded, so resuming fires no burst of old orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.services.alerts import raise_alert
from pm_arb_tasks.state.halt import set_halt

EXECUTE_QUEUE = "execute"
EXECUTE_WORKER_PREFIX = "execute@"
BROADCAST_TIMEOUT = 1.0


@dataclass(frozen=True)
class SwitchReport:
    halted: bool
    workers: tuple[str, ...]  # the workers that acknowledged the consumer change


def _acknowledged(replies: list[dict] | None) -> tuple[str, ...]:
    return tuple(sorted(name for reply in replies or [] for name in reply))


def stop(reason: str) -> SwitchReport:
    set_halt(True, reason)
    replies = app.control.cancel_consumer(EXECUTE_QUEUE, reply=True, timeout=BROADCAST_TIMEOUT)
    raise_alert(kind="system_halted", priority=2, title="Trading halted", message=reason)
    return SwitchReport(True, _acknowledged(replies))


def execute_workers() -> list[str]:
    replies = app.control.ping(timeout=BROADCAST_TIMEOUT) or []
    return sorted(name for reply in replies for name in reply if name.startswith(EXECUTE_WORKER_PREFIX))


def resume(reason: str) -> SwitchReport:
    set_halt(False, reason)
    workers = execute_workers()
    replies = (
        app.control.add_consumer(EXECUTE_QUEUE, destination=workers, reply=True, timeout=BROADCAST_TIMEOUT)
        if workers
        else []
    )
    raise_alert(kind="system_resumed", priority=0, title="Trading resumed", message=reason)
    return SwitchReport(False, _acknowledged(replies))

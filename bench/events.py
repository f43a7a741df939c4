"""Celery task events, captured in a thread: per task id, when it was sent, received, started, done.

The workers already send task events (`worker_send_task_events`, `task_send_sent_event`), so the
per-stage breakdown needs no instrumentation in product code. Each event carries the sending
process's wall clock (`timestamp`); all processes run on this machine, so one clock.

- `task-sent` is emitted by the process that published the message, right after publishing:
  for a chain step, the worker child that ran the previous step.
- `task-received` is emitted by the worker's main process when it takes the message off Redis.
- `task-started` is emitted by the main process when its pool reports the job accepted; with the
  prefork pool that report can arrive after the child has already started, so stage boundaries
  use `received` and the next hop's `sent`, and `started` only shows the pool hand-off.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

DONE = ("task-succeeded", "task-failed", "task-rejected", "task-revoked")


@dataclass
class TaskTrace:
    uuid: str
    name: str = ""
    root_id: str | None = None
    parent_id: str | None = None
    times: dict[str, float] = field(default_factory=dict)  # event type -> first timestamp
    result: str = ""
    runtime: float | None = None  # seconds the task body ran in the worker (task-succeeded)

    @property
    def queue(self) -> str:
        """`pm_arb.<queue>.<action>` -> queue."""
        parts = self.name.split(".")
        return parts[1] if len(parts) >= 3 else ""

    @property
    def done(self) -> bool:
        return any(kind in self.times for kind in DONE)


class EventLog:
    """Collects the task events of one app's broker; `wait_chain` blocks until a chain finished."""

    def __init__(self, app: Celery):
        self.app = app
        self.tasks: dict[str, TaskTrace] = {}
        self.by_root: dict[str, set[str]] = defaultdict(set)
        self.workers_seen: set[str] = set()
        self._cond = threading.Condition()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="bench-events", daemon=True)

    def start(self) -> EventLog:
        self._thread.start()
        return self

    def _run(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        with self._cond:
            if kind.startswith("worker-"):
                self.workers_seen.add(str(event.get("hostname", "")))
            elif kind.startswith("task-") and event.get("uuid"):
                trace = self.tasks.setdefault(event["uuid"], TaskTrace(event["uuid"]))
                trace.name = event.get("name") or trace.name
                trace.root_id = event.get("root_id") or trace.root_id
                trace.parent_id = event.get("parent_id") or trace.parent_id
                trace.times.setdefault(kind, float(event.get("timestamp", time.time())))
                if kind == "task-succeeded":
                    trace.result = str(event.get("result", ""))[:500]
                    trace.runtime = event.get("runtime")
                if trace.root_id:
                    self.by_root[trace.root_id].add(trace.uuid)
            self._cond.notify_all()

    def chain(self, root_id: str) -> list[TaskTrace]:
        """Every task of one chain (a task sent from outside any task is its own root)."""
        with self._cond:
            return [self.tasks[u] for u in self.by_root.get(root_id, ())]

    def wait_chain(self, root_id: str, tasks: int, timeout: float) -> bool:
        """True once `tasks` tasks under `root_id` (the root included) have all finished."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ids = self.by_root.get(root_id, set())
                if len(ids) >= tasks and all(self.tasks[u].done for u in ids):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    def wait_workers(self, prefixes: list[str], timeout: float) -> None:
        """Until a worker event (online/heartbeat) arrived from each node: the receiver is live."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(any(h.startswith(p) for h in self.workers_seen) for p in prefixes):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [p for p in prefixes if not any(h.startswith(p) for h in self.workers_seen)]
                    raise TimeoutError(f"no worker events from {missing} within {timeout}s")
                self._cond.wait(left)

"""Operator-area test support: its Redis databases, made-up Pushover keys, and Flower.

Modules of the area run one after another, so each takes one database of the three:
alerts and watchdog 13, report and the end-to-end secrets search 14, Flower and the `pm-arb up`
stack 15. Each module flushes its database first, so sharing one never carries state over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import select

from bench.services import free_port
from pm_arb_tasks.celery_app import QUEUES
from pm_arb_tasks.db.models import AlertRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.services import watchdog
from pm_arb_tasks.state.market_data import mark_poll
from tests.support.waiting import wait_for

REDIS_DBS = (13, 14, 15)
STACK_REDIS_DB = REDIS_DBS[2]
SECRETS_REDIS_DB = REDIS_DBS[1]  # test_secrets_end_to_end.py (after test_report.py, never beside it)
PM_ARB = str(Path(sys.executable).with_name("pm-arb"))
OTHER_QUEUES = ",".join(q for q in QUEUES if q != "execute")  # one worker for all but the executor's
PUSHOVER_TOKEN = "atesttoken0123456789abcdefghij"  # 30 characters, like a real one
PUSHOVER_USER = "utestuser0123456789abcdefghijk"


def watchdog_pass() -> list[watchdog.AlertSpec]:
    """One pass with fresh market data, so only the workers (and the database) are under test."""
    now = datetime.now(UTC)
    mark_poll("oracle", now)
    mark_poll("books", now)
    return watchdog.run()


def alert_rows() -> list[AlertRow]:
    with session_scope() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


@dataclass(frozen=True)
class Flower:
    """A running `pm-arb flower`: where it listens, its pid, and its output."""

    url: str
    pid: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def http_status(url: str, **kw: object) -> int | None:
    """The status of a GET, None while nothing listens."""
    try:
        return requests.get(url, timeout=2, **kw).status_code  # type: ignore[arg-type]
    except requests.ConnectionError:
        return None


@contextmanager
def running_flower(env: dict[str, str]) -> Iterator[Flower]:
    """`pm-arb flower` exactly as the Procfile starts it (the login from FLOWER_BASIC_AUTH in `env`),
    on a free port, output to a temp file; yields once it listens, stops its process group after."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="flower-", suffix=".log")[1])
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [PM_ARB, "flower", "--port", str(port)], env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    flower = Flower(f"http://127.0.0.1:{port}", proc.pid, log_path)
    try:
        def listening() -> bool:
            assert proc.poll() is None, f"flower exited:\n{flower.log()}"
            return http_status(flower.url) is not None

        wait_for(listening, timeout=60, interval=0.2, what="Flower to listen")
        yield flower
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

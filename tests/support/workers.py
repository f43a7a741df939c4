"""Real Celery worker processes for integration tests (never task_always_eager)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pm_arb_tasks.celery_app import app
from tests.support.waiting import wait_for


class Worker:
    """`celery -A pm_arb_tasks worker` in its own process group, with its log in a temp file."""

    def __init__(self, name: str, queues: str, env: dict[str, str], concurrency: int = 1, pool: str = "prefork"):
        self.name, self.queues, self.env = name, queues, env
        self.concurrency, self.pool = concurrency, pool
        self.hostname = f"{name}@{socket.gethostname()}"
        self.log_path = Path(tempfile.mkstemp(prefix=f"worker-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        cmd = [
            sys.executable, "-m", "celery", "-A", "pm_arb_tasks", "worker",
            "-Q", self.queues, "-n", self.hostname, "-c", str(self.concurrency), "-P", self.pool,
            "--prefetch-multiplier", "1", "--without-mingle", "--without-gossip", "-l", "INFO",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float = 60) -> Worker:
        def answered() -> bool:
            assert self.proc and self.proc.poll() is None, f"worker {self.name} exited:\n{self.log()}"
            replies = app.control.ping(destination=[self.hostname], timeout=0.5) or []
            return any(self.hostname in reply for reply in replies)

        wait_for(answered, timeout=timeout, interval=0.2, what=f"worker {self.hostname} to answer ping")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean shutdown, no acks."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def running(*workers: Worker) -> Iterator[tuple[Worker, ...]]:
    """Start the workers together, wait until each answers, stop them all afterwards."""
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()

"""celery-redbeat's lock: a second beat started by mistake does not double the schedule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.env import flush_redis, redis_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
REDIS_DB = 1
SENT = "Sending due task oracle-poll"


class Beat:
    def __init__(self, name: str) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix=f"beat-{name}-", suffix=".log")[1])
        env = {**os.environ, "REDIS_URL": redis_url(REDIS_DB)}
        cmd = [sys.executable, "-m", "celery", "-A", "pm_arb_tasks", "beat", "-l", "INFO"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def sent(self) -> int:
        return self.log_path.read_text(errors="replace").count(SENT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture()
def beats() -> Iterator[list[Beat]]:
    flush_redis(REDIS_DB)
    started: list[Beat] = []
    yield started
    for beat in started:
        beat.stop()
    flush_redis(REDIS_DB)


def test_only_one_beat_sends_while_the_other_waits_for_the_lock(beats: list[Beat]) -> None:
    first = Beat("first")
    beats.append(first)
    wait_for(lambda: first.sent() >= 1, timeout=60, what="the first beat to send")
    second = Beat("second")
    beats.append(second)
    wait_for(lambda: "beat: Starting" in second.log_path.read_text(errors="replace"), timeout=60, what="second beat")
    already = first.sent()
    wait_for(lambda: first.sent() >= already + 5, timeout=60, what="five more polls from the first beat")
    assert second.sent() == 0

    first.stop()  # the lock passes on once it expires: the schedule survives the loss of a beat
    wait_for(lambda: second.sent() >= 1, timeout=120, what="the second beat to take over")

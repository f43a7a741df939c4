"""The real Flower started by `pm-arb flower`: basic auth enforced, password never on a command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.env import flush_redis, redis_url
from tests.support.ops import REDIS_DBS
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
REDIS_DB = REDIS_DBS[2]
PASSWORD = "flower-test-Pa55word"
AUTH = ("operator", PASSWORD)
PM_ARB = str(Path(sys.executable).with_name("pm-arb"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flower_env(auth: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url(REDIS_DB), "FLOWER_BASIC_AUTH": auth}


def status_of(url: str, **kw: object) -> int | None:
    try:
        return requests.get(url, timeout=2, **kw).status_code  # type: ignore[arg-type]
    except requests.ConnectionError:
        return None


@pytest.fixture(scope="module")
def flower() -> Iterator[tuple[str, int]]:
    flush_redis(REDIS_DB)
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="flower-", suffix=".log")[1])
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [PM_ARB, "flower", "--port", str(port)], env=flower_env(f"{AUTH[0]}:{PASSWORD}"),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, f"flower exited:\n{log.read_text(errors='replace')}"
            return status_of(url) is not None

        wait_for(up, timeout=60, interval=0.2, what="Flower to listen")
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        assert PASSWORD not in log.read_text(errors="replace"), "the Flower password reached its log"


def test_unauthenticated_request_gets_401(flower: tuple[str, int]) -> None:
    url, _ = flower
    response = requests.get(url, timeout=5)
    assert response.status_code == 401
    assert status_of(f"{url}/api/workers") == 401
    assert status_of(url, auth=("operator", "wrong-password")) == 401


def test_authenticated_request_gets_200(flower: tuple[str, int]) -> None:
    url, _ = flower
    assert status_of(url, auth=AUTH) == 200
    assert status_of(f"{url}/api/workers", auth=AUTH) == 200


def test_password_is_not_on_the_command_line(flower: tuple[str, int]) -> None:
    _, pid = flower
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "flower" in cmdline and "--port=" in cmdline
    assert PASSWORD not in cmdline


@pytest.mark.parametrize("auth", ["", "operator", "operator:", ":secret", "operator:secret,second"])
def test_refuses_to_start_without_a_valid_login(auth: str) -> None:
    result = subprocess.run(
        [PM_ARB, "flower", "--port", str(free_port())], env=flower_env(auth), capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr + result.stdout
    if auth:
        assert auth not in result.stderr + result.stdout or len(auth) < 6

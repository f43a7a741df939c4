"""The real Flower started by `pm-arb flower`: basic auth enforced, password never on a command line."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.services import free_port
from tests.support.env import flush_redis, redis_url
from tests.support.ops import PM_ARB, REDIS_DBS, http_status, running_flower

pytestmark = pytest.mark.integration
REDIS_DB = REDIS_DBS[2]
PASSWORD = "flower-test-Pa55word"
AUTH = ("operator", PASSWORD)


def flower_env(auth: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url(REDIS_DB), "FLOWER_BASIC_AUTH": auth}


@pytest.fixture(scope="module")
def flower() -> Iterator[tuple[str, int]]:
    flush_redis(REDIS_DB)
    with running_flower(flower_env(f"{AUTH[0]}:{PASSWORD}")) as started:
        yield started.url, started.pid
    assert PASSWORD not in started.log(), "the Flower password reached its log"


def test_unauthenticated_request_gets_401(flower: tuple[str, int]) -> None:
    url, _ = flower
    response = requests.get(url, timeout=5)
    assert response.status_code == 401
    assert http_status(f"{url}/api/workers") == 401
    assert http_status(url, auth=("operator", "wrong-password")) == 401


def test_authenticated_request_gets_200(flower: tuple[str, int]) -> None:
    url, _ = flower
    assert http_status(url, auth=AUTH) == 200
    assert http_status(f"{url}/api/workers", auth=AUTH) == 200


def test_password_is_not_on_the_command_line(flower: tuple[str, int]) -> None:
    _, pid = flower
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "flower" in cmdline and "--port=" in cmdline
    assert PASSWORD not in cmdline


def test_flower_keeps_a_bounded_number_of_tasks(flower: tuple[str, int]) -> None:
    """Flower's own default (100,000 tasks in memory) would outgrow the workers on a small machine."""
    _, pid = flower
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"FLOWER_MAX_TASKS=3000" in environ


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

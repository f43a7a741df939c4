"""Workers refuse to start when they cannot work safely, with the command that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.env import _admin, pg_url, redis_url

pytestmark = pytest.mark.integration


def start_worker(queue: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "celery", "-A", "pm_arb_tasks", "worker", "-Q", queue, "-n", f"{queue}-startup@%h",
           "--without-mingle", "--without-gossip", "-l", "INFO"]
    return subprocess.run(cmd, env={**os.environ, "REDIS_URL": redis_url(1), **env}, capture_output=True,
                          text=True, timeout=120)


def test_a_worker_refuses_an_unmigrated_database() -> None:
    schema = "pmarb_startup_empty"
    _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    try:
        out = start_worker("persist", DATABASE_URL=pg_url(schema))
    finally:
        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert out.returncode != 0
    assert "pm-arb db upgrade" in out.stdout + out.stderr


def test_a_live_executor_refuses_a_venue_it_cannot_reach(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pm_arb_tasks.db.migrate import upgrade

    url = f"sqlite:///{tmp_path}/live.db"
    upgrade(url)
    key = "0x" + "7a" * 32
    out = start_worker("execute", DATABASE_URL=url, PAPER_TRADING="false", POLYMARKET_PRIVATE_KEY=key,
                       CLOB_API_URL="http://127.0.0.1:9")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "worker refuses to start" in text
    assert key not in text and key[2:] not in text



def test_a_bad_setting_stops_a_worker_with_one_line_naming_it() -> None:
    out = start_worker("scan", SYMBOLS="BTCUSDT")
    assert out.returncode != 0
    [line] = out.stderr.strip().splitlines()  # no traceback, no "Couldn't import 'pm_arb_tasks'"
    assert line.startswith("configuration error: SYMBOLS takes bare symbols"), line

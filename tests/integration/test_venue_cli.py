"""`pm-arb creds`, `check` and `trade` against the simulator (trade through real Celery workers)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner

from pm_arb_tasks.cli import venue as venue_cli  # noqa: F401 - registers the commands
from pm_arb_tasks.cli.app import cli
from pm_arb_tasks.sim.server import SimServer, running_sim
from tests.support.venue import VenueLog, cache_market, live_stores, new_key, strike_market
from tests.support.workers import Worker

pytestmark = pytest.mark.integration
KEY = new_key()


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with running_sim(seed=11, symbols=("BTC",)) as server:
        yield server


@pytest.fixture
def env(sim: SimServer) -> Iterator[dict[str, str]]:
    with live_stores(sim.url, KEY) as worker_env:
        yield worker_env


def test_creds_prints_masked_and_writes_env_only_when_asked(env: dict[str, str], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PAPER_TRADING=true\nPOLYMARKET_API_KEY=old\n")
    shown = CliRunner().invoke(cli, ["creds", "--env-file", str(env_file)])
    assert shown.exit_code == 0, shown.output
    assert "not written" in shown.output and env_file.read_text().endswith("POLYMARKET_API_KEY=old\n")

    written = CliRunner().invoke(cli, ["creds", "--write-env", "--env-file", str(env_file)])
    assert written.exit_code == 0, written.output
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert values["PAPER_TRADING"] == "true" and values["POLYMARKET_API_KEY"] != "old"
    for name in ("POLYMARKET_API_KEY", "POLYMARKET_SECRET", "POLYMARKET_PASSPHRASE"):
        assert values[name] and values[name] not in shown.output + written.output
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert KEY not in shown.output + written.output


def test_check_reports_collateral_and_allowances(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "pUSD collateral: 1000.00" in result.output and "neg-risk exchange (V2)" in result.output
    assert "ready for live trading" in result.output and KEY not in result.output


def test_check_says_what_is_missing(env: dict[str, str], sim: SimServer) -> None:
    from pm_arb_tasks.adapters.polymarket.live_client import ClobSession
    from pm_arb_tasks.settings import get_settings

    sim.scenario.settings["clob_balances"] = {ClobSession(get_settings()).address: "0"}
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert "MISSING: no pUSD collateral: deposit pUSD" in result.output


def test_manual_trade_goes_through_risk_and_execute_workers(env: dict[str, str], sim: SimServer) -> None:
    market = cache_market(sim.scenario, strike_market(sim.scenario))
    worker = Worker("venue-trade", "risk,execute,persist,alert", env).start()
    try:
        worker.wait_ready()
        result = CliRunner().invoke(
            cli, ["trade", "--market", market.market_id, "--outcome", "YES", "--amount", "5",
                  "--limit-price", "0.95"],
        )
    finally:
        worker.stop()
    assert result.exit_code == 0, result.output + worker.log()
    assert "LIVE order sent" in result.output and "filled:" in result.output
    assert len(VenueLog(sim.scenario).orders()) == 1
    assert KEY not in worker.log()


def test_manual_trade_below_the_minimum_order_says_the_smallest_amount(env: dict[str, str], sim: SimServer) -> None:
    market = cache_market(sim.scenario, strike_market(sim.scenario))
    result = CliRunner().invoke(
        cli, ["trade", "--market", market.market_id, "--outcome", "YES", "--amount", "1", "--limit-price", "0.55"]
    )
    assert result.exit_code == 1
    assert f"below the market's minimum order of {market.min_order_size} shares" in result.output
    assert f"--amount {(market.min_order_size * D('0.55')).quantize(D('0.01'))}" in result.output
    assert VenueLog(sim.scenario).orders() == []  # nothing sent, not even to risk

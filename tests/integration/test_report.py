"""The P&L report, the status snapshot and the scheduled summaries against a seeded trade history
in a fresh PostgreSQL schema; every expected figure below is worked out by hand in the comments."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import pm_arb_tasks.cli.operator  # noqa: F401 - registers the operator commands on the group
from pm_arb_tasks.cli.app import cli
from pm_arb_tasks.db.models import AlertRow, MarketRow, OpportunityRow, PaperTradeRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import Book, BookLevel
from pm_arb_tasks.services import reporting
from pm_arb_tasks.state.halt import set_halt
from pm_arb_tasks.state.market_data import save_books
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.ops import REDIS_DBS

pytestmark = pytest.mark.integration
REDIS_DB = REDIS_DBS[1]
NOW = datetime.now(UTC)
BASE = reporting.day_start(NOW) - timedelta(days=2) + timedelta(hours=10)  # inside a 3-day window
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def market(market_id: str, kind: str, slug: str, winner: str | None = None) -> MarketRow:
    return MarketRow(
        market_id=market_id, slug=slug, kind=kind, symbol="BTC", tick_size=D("0.01"), min_order_size=D(5),
        yes_token_id=f"{market_id}-yes", no_token_id=f"{market_id}-no", winning_outcome=winner,
    )


def trade(n: int, market_id: str, outcome: str, status: str, created: datetime, max_price: str,
          filled: str = "0", price: str | None = None, fee: str = "0", latency: float | None = None) -> PaperTradeRow:
    return PaperTradeRow(
        trade_id=f"t-{n}", request_id=f"r-{n}", market_id=market_id, token_id=f"{market_id}-{outcome.lower()}",
        side="BUY", outcome=outcome, requested_amount=D(10), max_price=D(max_price), filled_amount=D(filled),
        fill_price=D(price) if price else None, fee=D(fee), status=status, created_at=created,
        filled_at=created + timedelta(seconds=latency) if latency is not None else None,
    )


@pytest.fixture(scope="module")
def seeded() -> Iterator[None]:
    with fresh_schema("ops_report") as url:
        flush_redis(REDIS_DB)
        point_process_at(redis_db=REDIS_DB, database_url=url, INITIAL_BANKROLL="200", PAPER_TRADING="true")
        with session_scope() as session:
            session.add_all(
                [
                    market("m1", "strike", "btc-above-70k", winner="YES"),
                    market("m2", "updown", "btc-updown-noon"),
                    # before the window: 10 @ 0.60 won -> 10 - 6 - 0.04 = +3.96 -> start equity 203.96
                    trade(0, "m1", "YES", "filled", NOW - timedelta(hours=100), "0.61", "10", "0.60", "0.04", 1),
                    # won: 20 - 10 - 0.10 = +9.90, slippage -0.02, latency 0.2 s
                    trade(1, "m1", "YES", "filled", BASE, "0.52", "20", "0.50", "0.10", 0.2),
                    # lost: 0 - 4 - 0.05 = -4.05, slippage 0, latency 0.4 s
                    trade(2, "m1", "NO", "filled", BASE + timedelta(hours=1), "0.40", "10", "0.40", "0.05", 0.4),
                    # open, marked at bid 0.60: 6 - 5.5 - 0.05 = +0.45, slippage -0.03, latency 0.7 s
                    trade(3, "m2", "YES", "filled", NOW - timedelta(hours=2), "0.58", "10", "0.55", "0.05", 0.7),
                    trade(4, "m2", "YES", "failed", NOW - timedelta(hours=1), "0.56"),
                    trade(5, "m2", "NO", "rejected", NOW - timedelta(hours=1), "0.45"),
                    # no market row and no book: unpriced; slippage -0.04, latency 0.1 s
                    trade(6, "m3", "YES", "partial", NOW - timedelta(hours=3), "0.34", "5", "0.30", "0.02", 0.1),
                    PositionRow(mode="paper", market_id="m2", outcome="YES", token_id="m2-yes", quantity=D(10),
                                cost=D("5.5"), fees=D("0.05")),
                    PositionRow(mode="paper", market_id="m1", outcome="YES", token_id="m1-yes", quantity=D(20),
                                cost=D(10), fees=D("0.10"), realized_pnl=D("9.90"), status="settled",
                                settled_at=NOW - timedelta(minutes=5)),
                ]
            )
        save_books([Book(token_id="m2-yes", bids=(BookLevel(price=D("0.60"), size=D(100)),),
                         asks=(BookLevel(price=D("0.62"), size=D(100)),), observed_at=NOW)])
        yield


def test_report_figures_match_the_seeded_history(seeded: None) -> None:
    rep = reporting.pnl_report(since=NOW - timedelta(days=3), until=NOW + timedelta(seconds=1))
    t = rep.total
    assert (t.trades, t.rejected, t.filled) == (6, 1, 4)
    assert t.fill_rate == D("0.8")  # 4 fills of 5 orders that reached the venue
    assert t.avg_slippage == D("-0.0225")  # (-0.02 + 0 - 0.03 - 0.04) / 4
    assert t.volume == D("21.0")  # 10 + 4 + 5.5 + 1.5
    assert t.fees == D("0.22")
    assert t.avg_latency_seconds == pytest.approx(0.35) and t.max_latency_seconds == pytest.approx(0.7)
    assert (t.realized, t.unrealized, t.unpriced) == (D("5.85"), D("0.45"), 1)
    assert rep.start_equity == D("203.96") and rep.end_equity == D("210.26")

    assert set(rep.by_kind) == {"strike", "updown", "unknown"}
    strike, updown = rep.by_kind["strike"], rep.by_kind["updown"]
    assert (strike.trades, strike.filled, strike.realized, strike.unrealized) == (2, 2, D("5.85"), D(0))
    assert (updown.trades, updown.filled, updown.fill_rate, updown.unrealized) == (3, 1, D("0.5"), D("0.45"))
    assert rep.by_kind["unknown"].unpriced == 1
    # per group: strike (-0.02 + 0) / 2 and (0.2 + 0.4) / 2 s; updown and unknown one fill each
    assert {k: (f.avg_slippage, f.avg_latency_seconds) for k, f in rep.by_kind.items()} == {
        "strike": (D("-0.01"), pytest.approx(0.3)),
        "updown": (D("-0.03"), pytest.approx(0.7)),
        "unknown": (D("-0.04"), pytest.approx(0.1)),
    }
    assert set(rep.by_market) == {"btc-above-70k", "btc-updown-noon", "m3"}
    assert rep.by_market["btc-above-70k"].fees == D("0.15")

    daily = dict(rep.daily)
    assert daily[BASE.date()] == D("5.85")
    assert sum(daily.values()) == D("6.30")
    assert rep.equity[0][1] == D("203.96") and rep.equity[-1][1] == D("210.26")


def group_columns(output: str, first: str, *columns: str) -> dict[str, tuple[str, ...]]:
    """The named columns of the report table headed by `first`, per row name, read by the header's
    column positions (the table is left-aligned; cells hold no double space)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{first}  "))
    header, rows = lines[start], []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    names = re.split(r"\s{2,}", header)
    cells = {re.split(r"\s{2,}", row)[0]: dict(zip(names, re.split(r"\s{2,}", row), strict=True)) for row in rows}
    return {row: tuple(values[c] for c in columns) for row, values in cells.items()}


def test_report_command_prints_the_figures_and_draws_a_png(seeded: None, tmp_path: Path) -> None:
    chart = tmp_path / "pnl.png"
    result = CliRunner().invoke(cli, ["report", "--days", "3", "--plot", str(chart)])
    assert result.exit_code == 0, result.output
    for text in ("fill rate 80.0%", "-0.0225 vs limit price", "0.22 USD", "avg 0.35 s, max 0.70 s",
                 "+5.85 USD", "+0.45 USD (1 unpriced)", "203.96 -> 210.26 USD", "btc-updown-noon", "strike"):
        assert text in result.output, f"{text!r} missing from:\n{result.output}"
    assert group_columns(result.output, "MARKET KIND", "AVG SLIPPAGE", "AVG FILL LATENCY") == {
        "strike": ("-0.0100", "0.30 s"), "updown": ("-0.0300", "0.70 s"), "unknown": ("-0.0400", "0.10 s"),
    }
    assert group_columns(result.output, "MARKET", "AVG SLIPPAGE", "AVG FILL LATENCY") == {
        "btc-above-70k": ("-0.0100", "0.30 s"), "btc-updown-noon": ("-0.0300", "0.70 s"), "m3": ("-0.0400", "0.10 s"),
    }
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_status_snapshot_at_a_glance(seeded: None) -> None:
    set_halt(True, "drawdown limit")
    try:
        result = CliRunner().invoke(cli, ["status"])
    finally:
        set_halt(False, "test done")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "HALTED" in out and "drawdown limit" in out
    assert "execute  (paused: halted)" in out and "oracle   NONE" in out  # no workers in this test
    assert "btc-updown-noon  YES" in out and "+0.45" in out  # the open position, marked at the bid
    assert "realized (settled today) +9.90" in out
    snap = reporting.status_snapshot()
    assert [p.market_id for p in snap.positions] == ["m2"]
    assert snap.queues[0].backlog == 0 and not snap.errors


def test_daily_summary_covers_the_day_that_ended_once(seeded: None) -> None:
    day_after = reporting.day_start(BASE) + timedelta(days=1, minutes=1)
    first = reporting.send_daily_summary(day_after)
    assert reporting.send_daily_summary(day_after) == first
    with session_scope() as session:
        rows = session.scalars(select(AlertRow).where(AlertRow.kind == "daily_summary")).all()
    [summary] = rows
    assert summary.message.startswith("2 trades, 2 filled (fill rate 100%), volume 14.00 USD, fees 0.15")
    assert "P&L +5.85" in summary.message


def test_hourly_opportunity_count(seeded: None) -> None:
    hour = datetime(2025, 6, 1, 13, 0, tzinfo=UTC)
    with session_scope() as session:
        session.add_all(
            [
                OpportunityRow(opportunity_id=f"o{i}", market_id="m2", emitted=i < 2,
                               reason="" if i < 2 else ("edge_below_min" if i < 7 else "no_book"),
                               observed_at=hour - timedelta(minutes=50 - i))
                for i in range(9)
            ]
            + [OpportunityRow(opportunity_id="late", market_id="m2", observed_at=hour + timedelta(minutes=1))]
        )
    alert_id = reporting.send_hourly_opportunities(hour + timedelta(seconds=5))
    with session_scope() as session:
        row = session.scalar(select(AlertRow).where(AlertRow.alert_id == alert_id))
    assert row.priority == -1 and row.title == "Opportunities 12:00-13:00 UTC"
    assert row.message == "9 evaluated, 2 sent as trade requests; filtered: edge_below_min 5, no_book 2"


def test_large_loss_alerts_high_once_and_small_losses_do_not(seeded: None) -> None:
    from pm_arb_tasks.services.alerts import HIGH, alert_if_large_loss

    assert not alert_if_large_loss(ref="position-7", what="m1 NO (paper)", pnl=D("-20"))
    assert alert_if_large_loss(ref="position-8", what="m1 NO (paper)", pnl=D("-20.01"))
    assert alert_if_large_loss(ref="position-8", what="m1 NO (paper)", pnl=D("-20.01"))  # redelivered settlement
    with session_scope() as session:
        [row] = session.scalars(select(AlertRow).where(AlertRow.kind == "large_loss")).all()
    assert row.priority == HIGH and row.message == "m1 NO (paper) lost 20.01 USD (more than 20 USD)"

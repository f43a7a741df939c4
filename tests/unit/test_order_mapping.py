"""Reading the CLOB's payloads: junk never becomes a number, fills are summed from our own legs,
and every refusal maps to the status the rest of the chain expects."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from pm_arb_tasks.adapters.polymarket.order_mapping import (
    Settlement,
    fill_from_trades,
    fill_status,
    parse_decimal,
    price_on_tick,
    rules_from_book,
    spend_for,
    verdict_for_error,
)
from pm_arb_tasks.domain.models import FeeSchedule, TradeStatus
from pm_arb_tasks.services.positions import position_difference

ORDER = "0xABC123"


@pytest.mark.parametrize("raw", [None, "", "NaN", "Infinity", "-Infinity", "abc", True, [], {}, "1e999999999"])
def test_junk_is_not_a_number(raw: object) -> None:
    assert parse_decimal(raw) is None


def test_numbers_parse_exactly() -> None:
    assert parse_decimal("0.52") == D("0.52")
    assert parse_decimal(7) == D(7)


def test_rules_from_book() -> None:
    rules = rules_from_book({"tick_size": "0.010", "min_order_size": "5", "neg_risk": True})
    assert rules is not None and rules.tick_size == D("0.01") and rules.min_order_size == 5 and rules.neg_risk
    assert rules_from_book({"tick_size": "0", "min_order_size": "5"}) is None
    assert rules_from_book({"tick_size": "0.01"}) is None
    assert rules_from_book("not a book") is None


def test_limit_rounds_down_to_the_tick_and_spend_to_the_cent() -> None:
    assert price_on_tick(D("0.557"), D("0.01")) == D("0.55")
    assert price_on_tick(D("0.55"), D("0.01")) == D("0.55")
    assert price_on_tick(D("0.59"), D("0.1")) == D("0.5")
    assert spend_for(D("2.019")) == D("2.01")


def taker_trade(status: str, *legs: tuple[str, str], trade_id: str = "t1", order: str = ORDER) -> dict:
    return {
        "id": trade_id, "taker_order_id": order.lower(), "status": status, "price": "0.99", "size": "999",
        "match_time": "1700000000",
        "maker_orders": [{"order_id": "0xmaker", "price": p, "matched_amount": s} for p, s in legs],
    }


def test_fill_sums_maker_legs_with_the_taker_fee() -> None:
    schedule = FeeSchedule(rate=D("0.07"), exponent=D(1))
    fill = fill_from_trades([taker_trade("MATCHED", ("0.50", "10"), ("0.52", "5"))], ORDER, schedule)
    assert fill.shares == D(15)
    assert fill.cost == D("7.60")
    assert fill.vwap == (D("7.60") / 15).quantize(D("0.00000001"))
    assert fill.fee == (10 * D("0.07") * D("0.25") + 5 * D("0.07") * D("0.52") * D("0.48")).quantize(D("0.00000001"))
    assert fill.trade_ids == ("t1",) and fill.settlement == Settlement.PENDING


def test_failed_trades_buy_nothing_and_settlement_follows_every_trade() -> None:
    trades = [taker_trade("CONFIRMED", ("0.5", "4")), taker_trade("FAILED", ("0.5", "6"), trade_id="t2")]
    fill = fill_from_trades(trades, ORDER, None)
    assert fill.shares == 4 and fill.settlement == Settlement.CONFIRMED and fill.trade_ids == ("t1", "t2")
    assert fill_from_trades([taker_trade("FAILED", ("0.5", "6"))], ORDER, None).settlement == Settlement.FAILED
    assert fill_from_trades([], ORDER, None).settlement is None


def test_other_orders_trades_and_garbage_are_ignored() -> None:
    trades = [taker_trade("MATCHED", ("0.5", "4"), order="0xother"), "junk", {"maker_orders": "junk"}]
    assert fill_from_trades(trades, ORDER, None).shares == 0


def test_a_maker_leg_of_our_order_counts_without_taker_fee() -> None:
    trade = {"id": "t9", "taker_order_id": "0xother", "status": "MATCHED",
             "maker_orders": [{"order_id": ORDER, "price": "0.4", "matched_amount": "3"}]}
    fill = fill_from_trades([trade], ORDER, FeeSchedule(rate=D("0.07")))
    assert (fill.shares, fill.cost, fill.fee) == (D(3), D("1.2"), D(0))


def test_fill_status() -> None:
    assert fill_status(D(10), D("4.995"), D("5.00")) is TradeStatus.FILLED
    assert fill_status(D(4), D("2.00"), D("5.00")) is TradeStatus.PARTIAL
    assert fill_status(D(0), D(0), D("5.00")) is TradeStatus.FAILED


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "not enough balance / allowance", TradeStatus.FAILED),
        (400, "order couldn't be fully filled. FOK orders are fully filled or killed.", TradeStatus.FAILED),
        (400, "no orders found to match with FAK order.", TradeStatus.FAILED),
        (400, "invalid price (0.555), breaks the minimum tick size rule: 0.01", TradeStatus.REJECTED),
        (400, "Size (2) lower than the minimum: 5", TradeStatus.REJECTED),
        (401, "Unauthorized/Invalid api key", TradeStatus.REJECTED),
        (429, "Too Many Requests", TradeStatus.FAILED),
        (500, "could not run the execution", TradeStatus.UNKNOWN),
        (503, "", TradeStatus.UNKNOWN),
    ],
)
def test_refusals(status: int, message: str, expected: TradeStatus) -> None:
    verdict = verdict_for_error(status, message)
    assert verdict.status is expected
    assert message in verdict.message


def test_position_difference() -> None:
    assert position_difference(D(10), D(5), D(10), D("0.5")) == ""
    assert position_difference(D(10), D(5), D("11.9"), D("0.5")) == ""  # 1.9 shares at 0.50 = $0.95
    assert "venue 12.50" in position_difference(D(10), D(5), D("12.5"), D("0.5"))
    assert "average price" in position_difference(D(10), D(5), D(10), D("0.56"))
    assert position_difference(D(0), D(0), D(0), None) == ""

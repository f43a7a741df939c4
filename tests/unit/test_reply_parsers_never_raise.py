"""Arbitrary input to the venue-reply, Retry-After and Pushover parsers: none raises (invariant 6).

The oracle, Gamma and book parsers have their own property tests beside their golden cases; these
are the small parsers the order path and alert delivery lean on."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

import requests
from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.adapters.http import parse_retry_after
from pm_arb_tasks.adapters.polymarket.order_mapping import (
    error_message,
    fill_from_trades,
    parse_decimal,
    rules_from_book,
    verdict_for_error,
)
from pm_arb_tasks.adapters.pushover import _json
from pm_arb_tasks.domain.models import FeeSchedule

HASH = "0xabc"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
NUMBERISH = JSON | st.sampled_from(["0.5", "-1", "1e999", "NaN", "Infinity", "", " 7 ", "0x10", "1" * 90])
LEG = st.fixed_dictionaries({"order_id": st.sampled_from([HASH, HASH.upper(), "other"]) | JSON,
                             "price": NUMBERISH, "matched_amount": NUMBERISH})  # fmt: skip
TRADE = st.fixed_dictionaries(
    {"id": JSON, "status": st.sampled_from(["MATCHED", "CONFIRMED", "FAILED", "MINED"]) | JSON,
     "taker_order_id": st.sampled_from([HASH, "other"]) | JSON, "price": NUMBERISH, "size": NUMBERISH,
     "maker_orders": st.lists(LEG | JSON, max_size=3) | JSON}
)  # fmt: skip


@given(NUMBERISH)
def test_parse_decimal_is_finite_or_none(value: Any) -> None:
    number = parse_decimal(value)
    assert number is None or number.is_finite()


@given(st.dictionaries(st.sampled_from(["tick_size", "min_order_size", "neg_risk"]), NUMBERISH) | JSON)
def test_book_rules_are_sane_or_none(book: Any) -> None:
    rules = rules_from_book(book)
    assert rules is None or (D(0) < rules.tick_size < 1 and rules.min_order_size >= 0)


@given(st.lists(TRADE | JSON, max_size=4), st.none() | st.just(FeeSchedule(rate=D("0.07"), exponent=D(1))))
def test_fills_from_any_trades_never_raise_and_never_go_negative(trades: list[Any], schedule: Any) -> None:
    fill = fill_from_trades(trades, HASH, schedule)
    assert fill.shares >= 0 and fill.fee >= 0 and 0 <= fill.cost <= fill.shares


@given(JSON, st.integers(min_value=100, max_value=599))
def test_error_replies_always_map_to_a_verdict(body: Any, status: int) -> None:
    message = error_message(body, "fallback")
    assert isinstance(message, str) and len(message) <= 300
    assert verdict_for_error(status, message).message


@given(st.none() | st.text(max_size=40) | st.sampled_from(["1e999", "-5", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"]))
def test_retry_after_is_a_finite_non_negative_delay_or_none(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or 0 <= seconds < float("inf")


@given(st.binary(max_size=60) | JSON.map(lambda doc: json.dumps(doc).encode()))
def test_pushover_reply_body_is_a_dict_whatever_arrives(body: bytes) -> None:
    response = requests.Response()
    response._content, response.status_code = body, 200
    assert isinstance(_json(response), dict)

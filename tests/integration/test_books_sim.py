"""CLOB book reads against the running simulator over real HTTP: batched `POST /books`, single
`GET /book`, garbage and outages, staleness in the store, and py-clob-client-v2's own reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import requests
from py_clob_client_v2 import ClobClient

from pm_arb_tasks.adapters.http import make_session
from pm_arb_tasks.adapters.polymarket.books import BookReader, book_session
from pm_arb_tasks.services import marketdata
from pm_arb_tasks.sim import SimServer, running_sim
from pm_arb_tasks.state.market_data import book_is_stale, fresh_book, get_book, last_poll, tracked_token_ids
from tests.support.env import fresh_schema
from tests.support.marketdata import clear_faults, fault, marketdata_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with running_sim(seed=41) as server:
        yield server


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_schema("md") as url:
        yield url


@pytest.fixture(autouse=True)
def env(sim: SimServer, database: str) -> Iterator[None]:
    with marketdata_env("books", sim.url, database):
        clear_faults(sim.url)
        yield
        clear_faults(sim.url)


@pytest.fixture
def tokens(sim: SimServer) -> list[str]:
    assert marketdata.discover_markets(datetime.now(UTC)).ok
    return tracked_token_ids()


def now() -> datetime:
    return datetime.now(UTC)


def test_batched_books_for_every_tracked_token(sim: SimServer, tokens: list[str]) -> None:
    books = BookReader(sim.url, book_session()).books(tokens, now())
    assert sorted(b.token_id for b in books) == tokens and len(tokens) > 100  # more than one batch
    for book in books:
        assert book.best_bid and book.best_ask and book.best_bid.price < book.best_ask.price
        assert [lv.price for lv in book.asks] == sorted(lv.price for lv in book.asks)
        assert book.tick_size == D("0.01") and book.min_order_size == D(5)


def test_single_book_and_unknown_tokens(sim: SimServer, tokens: list[str]) -> None:
    reader = BookReader(sim.url, book_session())
    book = reader.book(tokens[0], now())
    assert book is not None and book.token_id == tokens[0]
    assert reader.book("123", now()) is None
    assert [b.token_id for b in reader.books(["123", tokens[1]], now())] == [tokens[1]]


def test_poll_books_stores_fresh_books_that_go_stale(tokens: list[str]) -> None:
    polled_at = now()
    assert marketdata.poll_books(polled_at) == len(tokens)
    book = get_book(tokens[0])
    assert book is not None and book.observed_at == polled_at and last_poll("books") == polled_at
    assert fresh_book(tokens[0], polled_at + timedelta(seconds=6)) == book  # three 2 s periods
    assert book_is_stale(book, polled_at + timedelta(seconds=6.5))
    assert fresh_book(tokens[0], polled_at + timedelta(seconds=7)) is None


@pytest.mark.parametrize("mode", ["garbage", "value"])
def test_garbage_levels_are_dropped_never_raised(sim: SimServer, tokens: list[str], mode: str) -> None:
    fault(sim.url, "clob", mode=mode, value="NaN", times=-1)
    books = BookReader(sim.url, book_session()).books(tokens[:10], now())
    assert len(books) == 10
    for book in books:
        assert all(0 < lv.price < 1 and lv.size > 0 for lv in book.bids + book.asks)
    if mode == "value":
        assert all(not b.bids and not b.asks for b in books)


def test_transient_5xx_is_retried_by_the_session(sim: SimServer, tokens: list[str]) -> None:
    fault(sim.url, "clob", status=503, times=1)
    assert len(BookReader(sim.url, book_session()).books(tokens[:5], now())) == 5


@pytest.mark.parametrize("spec", [{"mode": "truncated"}, {"mode": "html"}, {"status": 500}, {"status": 429}])
def test_failed_batches_are_skipped(sim: SimServer, tokens: list[str], spec: dict[str, object]) -> None:
    fault(sim.url, "clob", times=-1, **spec)
    reader = BookReader(sim.url, make_session(retries=0, retry_methods=("GET", "POST")))
    assert reader.books(tokens, now()) == [] and reader.book(tokens[0], now()) is None
    assert marketdata.poll_books(now()) == 0 and last_poll("books") is None


def test_py_clob_client_v2_reads_the_simulator(sim: SimServer, tokens: list[str]) -> None:
    client = ClobClient(sim.url, chain_id=137)
    assert client.get_ok() == "OK" and abs(client.get_server_time() - now().timestamp()) < 5
    book = client.get_order_book(tokens[0])
    assert book["asset_id"] == tokens[0] and book["bids"] and book["hash"] == client.get_order_book_hash(dict(book))
    row = sim.scenario.market_for_token(tokens[0])
    assert row is not None
    info = client.get_clob_market_info(row["conditionId"])
    assert {t["t"] for t in info["t"]} == set(json.loads(row["clobTokenIds"])) and info["mts"] == 0.01
    assert client.get_tick_size(tokens[0]) == "0.01" and client.get_neg_risk(tokens[0]) is False
    fee_token = next(t for t in tokens if sim.scenario.market_for_token(t)["feesEnabled"])  # type: ignore[index]
    assert client.get_fee_exponent(fee_token) == 1 and client.get_fee_rate_bps(fee_token) > 0
    assert float(client.get_midpoint(tokens[0])["mid"]) > 0
    assert client.get_market(row["conditionId"])["condition_id"] == row["conditionId"]
    assert requests.get(f"{sim.url}/markets", params={"next_cursor": ""}).json()["data"]

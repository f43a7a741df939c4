"""The scan service on real Redis and PostgreSQL: lagging markets become trade requests, the rest
are skipped with their reason in the opportunity log, once per cooldown."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from pm_arb_tasks.db.models import OpportunityRow, RiskExposureRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.edge import floor_to_tick
from pm_arb_tasks.domain.models import Book, BookLevel, FeeSchedule, Market, MarketKind, Outcome, Tick, TradeRequest
from pm_arb_tasks.domain.pricing import fair_yes
from pm_arb_tasks.services import scanning
from pm_arb_tasks.services.scanning import LOG_THROTTLE, scan
from pm_arb_tasks.state.market_data import save_books, save_markets, save_ticks, track_markets
from pm_arb_tasks.state.redis_client import get_redis
from tests.support.env import flush_redis
from tests.support.risk import SCAN_REDIS_DB, reset_book, risk_stores
from tests.support.sql import statements_sent

pytestmark = pytest.mark.integration
SIGMA = D("0.5")  # the volatility floor: the stored history below is flat
SPOT = D("70000")


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[None]:
    with risk_stores(SCAN_REDIS_DB, VOL_FLOOR=str(SIGMA), MARKET_COOLDOWN_SECONDS="60"):
        yield


@pytest.fixture(autouse=True)
def clean() -> None:
    flush_redis(SCAN_REDIS_DB)
    reset_book()
    LOG_THROTTLE.clear()


def strike_market(market_id: str, strike: str, now: datetime, **extra: object) -> Market:
    return Market(
        market_id=market_id, symbol="BTC", kind=MarketKind.STRIKE, strike=D(strike),
        resolves_at=now + timedelta(days=1), yes_token_id=f"{market_id}-y", no_token_id=f"{market_id}-n", **extra,
    )


def updown_market(market_id: str, start: datetime) -> Market:
    return Market(
        market_id=market_id, symbol="BTC", kind=MarketKind.UPDOWN, window_start=start,
        resolves_at=start + timedelta(minutes=15), yes_token_id=f"{market_id}-y", no_token_id=f"{market_id}-n",
    )


def book(token: str, ask: D, now: datetime, size: str = "1000") -> Book:
    return Book(token_id=token, asks=(BookLevel(price=ask, size=D(size)),), observed_at=now)


def seed(now: datetime) -> dict[str, Market]:
    save_ticks(Tick(symbol="BTC", price=SPOT, observed_at=now - timedelta(seconds=s), provider="t") for s in range(30))
    markets = {
        "lagging": strike_market("0xlag", "69000", now),
        "fee_eaten": strike_market(
            "0xfee", "69000", now, fees_enabled=True, fee_schedule=FeeSchedule(rate=D("0.07"), exponent=D(1))
        ),
        "unclassified": Market(market_id="0xodd", symbol="BTC", yes_token_id="0xodd-y", no_token_id="0xodd-n"),
        "updown_open": updown_market("0xud1", now - timedelta(seconds=20)),
        "updown_early": updown_market("0xud2", now + timedelta(minutes=1)),
        "updown_unknown_open": updown_market("0xud3", now - timedelta(minutes=10)),
        "stale_book": strike_market("0xstale", "69000", now),
    }
    save_markets(markets.values())
    track_markets(markets.values(), ["BTC"])
    fair = fair_yes(markets["lagging"], SPOT, SIGMA, now)
    lag_ask = floor_to_tick(fair - D("0.06"), D("0.01"))
    fee_ask = D("0.50")
    fee_fair = fee_ask + D("0.03")  # 3 points gross at 0.50 on a 7 % market: filtered
    fee_strike = _strike_for(fee_fair, now)
    markets["fee_eaten"] = markets["fee_eaten"].model_copy(update={"strike": fee_strike})
    save_markets([markets["fee_eaten"]])
    books = [
        book("0xlag-y", lag_ask, now), book("0xlag-n", D("0.99"), now),
        book("0xfee-y", fee_ask, now), book("0xfee-n", D("0.99"), now),
        book("0xud1-y", D("0.99"), now), book("0xud1-n", D("0.99"), now),
        book("0xstale-y", D("0.10"), now - timedelta(minutes=2)), book("0xstale-n", D("0.99"), now),
    ]
    save_books(books)
    return markets


def _strike_for(target: D, now: datetime) -> D:
    """The strike at which the fair value is `target` (bisection: fair falls as the strike rises)."""
    low, high = D(60000), D(80000)
    for _ in range(60):
        mid = (low + high) / 2
        if fair_yes(strike_market("x", str(mid), now), SPOT, SIGMA, now) > target:
            low = mid
        else:
            high = mid
    return low


def opportunities() -> list[OpportunityRow]:
    with session_scope() as session:
        return list(session.scalars(select(OpportunityRow)))


def reasons() -> dict[tuple[str, str | None], str]:
    return {(o.market_id, o.outcome): o.reason for o in opportunities()}


def sends_recorded(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """From now on, every command or pipeline redis-py sends, as bytes (one entry per round trip)."""
    from redis.connection import AbstractConnection

    sent: list[bytes] = []
    real_send = AbstractConnection.send_packed_command

    def recorded_send(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sent.append(b"".join(command) if isinstance(command, list) else bytes(command))
        return real_send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded_send)
    return sent


def test_a_lagging_market_trades_and_every_skip_is_explained() -> None:
    now = datetime.now(UTC)
    markets = seed(now)
    sent: list[TradeRequest] = []
    report = scan(["BTC"], now, tick_at=now, send=sent.append)

    assert [(r.market_id, r.outcome) for r in sent] == [("0xlag", Outcome.YES)]
    request = sent[0]
    tick_at = now
    assert request.tick_at == tick_at and request.deadline == tick_at + timedelta(seconds=5)
    assert request.amount == D(20) and request.token_id == "0xlag-y"
    assert request.limit_price <= request.fair_value - D("0.02")
    assert request.expected_edge is not None and request.expected_edge >= D("0.02")
    assert request.min_amount == (5 * request.limit_price).quantize(D("0.01"))
    assert markets["lagging"].market_id == request.market_id

    logged = reasons()
    assert logged[("0xlag", "YES")] == "emitted"
    assert logged[("0xfee", "YES")] == "below threshold after fee"
    assert logged[("0xodd", None)] == "unclassified market"
    assert logged[("0xud2", None)] == "window not open"
    assert logged[("0xud3", None)] == "no strike price yet"
    assert logged[("0xstale", "YES")] == "stale data"
    assert ("0xud1", "YES") not in logged  # priced, no edge: counted only
    assert report.reasons["no edge"] >= 2 and report.errors == 0
    emitted = next(o for o in opportunities() if o.emitted)
    assert emitted.request_id == request.request_id and emitted.opportunity_id == request.opportunity_id


def test_the_tick_sent_with_the_scan_is_priced_before_it_is_stored() -> None:
    """The poll sends the scan first and stores its ticks after: the scan prices from the newer of
    the tick in its message and the newest stored one."""
    now = datetime.now(UTC)
    seed(now)
    sent: list[TradeRequest] = []
    ahead = Tick(symbol="BTC", price=SPOT, observed_at=now + timedelta(milliseconds=500), provider="t")
    scan(["BTC"], ahead.observed_at, tick_at=ahead.observed_at, ticks=[ahead], send=sent.append)
    assert [r.tick_at for r in sent] == [ahead.observed_at]
    flush_redis(SCAN_REDIS_DB)
    seed(now)
    sent.clear()
    behind = Tick(symbol="BTC", price=SPOT, observed_at=now - timedelta(seconds=2), provider="t")
    other = Tick(symbol="ETH", price=D(3500), observed_at=now + timedelta(seconds=1), provider="t")
    scan(["BTC"], now, tick_at=now, ticks=[behind, other], send=sent.append)
    assert [r.tick_at for r in sent] == [now]  # an older sent tick, or another symbol's, never wins


def test_an_updown_window_opening_at_the_sent_tick_takes_its_strike_from_it() -> None:
    """The window's strike is the tick closest to its start, stored or still on its way to the store
    (without the sent tick it would be the stored one, 2,000 lower, and Up would look certain)."""
    now = datetime.now(UTC)
    seed(now)
    start, spot = now + timedelta(milliseconds=900), SPOT + 2000
    window = updown_market("0xudsent", start)
    save_markets([window])
    track_markets([window], ["BTC"])
    save_books([book("0xudsent-y", D("0.40"), now), book("0xudsent-n", D("0.99"), now)])
    tick = Tick(symbol="BTC", price=spot, observed_at=now + timedelta(seconds=1), provider="t")
    sent: list[TradeRequest] = []
    scan(["BTC"], tick.observed_at, tick_at=tick.observed_at, ticks=[tick], send=sent.append)
    (request,) = [r for r in sent if r.market_id == "0xudsent"]
    assert abs(request.fair_value - D("0.5")) < D("0.05")


def test_one_request_per_market_and_outcome_per_cooldown_and_no_duplicate_log_rows() -> None:
    now = datetime.now(UTC)
    seed(now)
    sent: list[TradeRequest] = []
    scan(["BTC"], now, send=sent.append)
    rows_after_first = len(opportunities())
    second = scan(["BTC"], now + timedelta(milliseconds=500), send=sent.append)
    assert len(sent) == 1
    assert second.reasons["cooldown"] == 1
    assert reasons()[("0xlag", "YES")] in {"emitted", "cooldown"}
    assert len(opportunities()) == rows_after_first + 1  # the cooldown row; repeated skips not re-logged


def test_stale_oracle_and_late_scans_trade_nothing() -> None:
    now = datetime.now(UTC)
    seed(now)
    sent: list[TradeRequest] = []
    stale = scan(["BTC"], now + timedelta(seconds=10), send=sent.append)
    assert stale.reasons == {"stale data": 1} and sent == []
    assert reasons()[("*", None)] == "stale data"
    late = scan(["BTC"], now, tick_at=now - timedelta(seconds=6), send=sent.append)
    assert late.reasons == {"late scan": 1} and sent == []


def test_a_failed_dispatch_is_logged_and_frees_the_cooldown() -> None:
    now = datetime.now(UTC)
    seed(now)

    def broken(_: TradeRequest) -> None:
        raise ConnectionError("broker down")

    failed = scan(["BTC"], now, send=broken)
    assert failed.reasons["dispatch failed"] == 1
    sent: list[TradeRequest] = []
    scan(["BTC"], now, send=sent.append)
    assert len(sent) == 1


def test_a_corrupt_book_or_market_never_stops_the_scan() -> None:
    from pm_arb_tasks.state.redis_client import get_redis

    now = datetime.now(UTC)
    seed(now)
    get_redis().set("pm_arb:book:0xfee-y", "{not json")
    get_redis().set("pm_arb:market:0xodd", '{"market_id": 5, "kind": "nonsense"}')
    sent: list[TradeRequest] = []
    report = scan(["BTC"], now, send=sent.append)
    assert len(sent) == 1 and report.errors == 0
    assert reasons()[("0xfee", "YES")] == "stale data"


def test_the_scan_task_dispatches_and_survives_a_bad_tick_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from pm_arb_tasks.services import dispatch
    from pm_arb_tasks.tasks.scanning import scan_symbols

    assert scan_symbols.name == "pm_arb.scan.symbols"
    sent: list[TradeRequest] = []
    monkeypatch.setattr(dispatch, "dispatch", sent.append)
    seed(datetime.now(UTC))
    garbage = [{"symbol": "BTC", "price": "NaN", "observed_at": "now", "provider": "x"}, "junk", None]
    result = scan_symbols(["BTC"], tick_at="not a time", ticks=garbage)
    assert result["emitted"] == 1 and [r.market_id for r in sent] == ["0xlag"]
    unreadable = scan_symbols(["BTC"], ticks={"BTC": 1})  # not a list: the stored tick stands
    assert unreadable["reasons"].get("cooldown") == 1 and unreadable["errors"] == 0  # priced: 0xlag again
    assert scan_symbols("BTC")["markets"] == 0  # not a list: nothing scanned, nothing raised


def test_the_chain_shows_a_one_line_summary_of_the_request_and_still_carries_all_of_it() -> None:
    """What Flower and the log show for each step is a summary we wrote, so Celery builds no repr
    of the arguments while publishing on the order path; the tasks still receive the whole request."""
    from pm_arb_tasks.services import dispatch
    from tests.support.risk import request as trade_request

    request = trade_request("0xshown", "3")
    dispatch.dispatch(request)
    (raw,) = get_redis().lrange("risk", 0, -1)  # no risk worker on these stores: the message waits
    message = json.loads(raw)
    args, _kwargs, embed = json.loads(base64.b64decode(message["body"]))
    shown = dispatch.summary(request)
    assert shown == f"{request.request_id}: BUY YES 0xshown $3 at <= 0.50"
    assert message["headers"]["argsrepr"] == f"(request {shown})"
    later = [step["options"]["argsrepr"] for step in reversed(embed["chain"])]  # Celery stores it last step first
    assert later == [f"(decision on {shown})", f"(result of {shown})", f"(result of {shown})"]
    assert args == [request.model_dump(mode="json")]


def test_nothing_touches_the_database_before_the_first_dispatch() -> None:
    """The order path reads Redis only: the scan sizes up to the position limit whatever the market
    already holds (the guardian reduces it under its lock), and logs opportunities after sending."""
    now = datetime.now(UTC)
    seed(now)
    with session_scope() as session:
        session.add(RiskExposureRow(mode="paper", market_id="0xlag", amount=D(12)))
    sent: list[tuple[TradeRequest, int]] = []
    with statements_sent() as statements:
        scan(["BTC"], now, send=lambda request: sent.append((request, len(statements))))
    assert [(r.market_id, r.amount, before) for r, before in sent] == [("0xlag", D(20), 0)]
    assert len(statements) == 1 and "INSERT INTO opportunities" in statements[0][0]  # the log, after it


def test_a_changed_document_book_or_index_is_seen_on_the_next_tick() -> None:
    """The scanner keeps what it derived from an unchanged universe between ticks; any change to a
    market document, a book or the tracked set shows on the very next scan."""
    now = datetime.now(UTC)
    markets = seed(now)
    sent: list[TradeRequest] = []
    scan(["BTC"], now, send=sent.append)
    assert [r.market_id for r in sent] == ["0xlag"]

    save_markets([markets["fee_eaten"].model_copy(update={"fees_enabled": False})])  # 3 points, no fee: trades
    save_books([book("0xud1-n", D("0.05"), now)])  # the open window's Down side now lags
    fresh = strike_market("0xnew", "69000", now)
    save_markets([fresh])
    track_markets([*markets.values(), fresh], ["BTC"])
    save_books([book("0xnew-y", D("0.10"), now), book("0xnew-n", D("0.99"), now)])
    report = scan(["BTC"], now + timedelta(milliseconds=100), send=sent.append)
    assert sorted((r.market_id, r.outcome) for r in sent[1:]) == [
        ("0xfee", Outcome.YES), ("0xnew", Outcome.YES), ("0xud1", Outcome.NO)
    ]
    assert report.markets == len(markets) + 1  # every tracked market, the one whose window is not open too

    save_markets([fresh.model_copy(update={"accepting_orders": False})])
    paused = scan(["BTC"], now + timedelta(milliseconds=200), send=sent.append)
    assert reasons()[("0xnew", None)] == "market closed" and paused.reasons["market closed"] == 1


def test_an_unchanged_universe_costs_one_round_trip_before_pricing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tick, volatility, the universe and its book tops go in one round trip once the universe is
    known; counted at the socket (every command or pipeline redis-py sends is one send)."""
    now = datetime.now(UTC)
    seed(now)
    scan(["BTC"], now, send=lambda request: None)  # learns the universe, caches the volatility
    real_screen = scanning.screen
    at_screen: list[int] = []

    def screen(*args, **kwargs):  # type: ignore[no-untyped-def]
        at_screen.append(len(sends))
        return real_screen(*args, **kwargs)

    scanning.release_cooldowns([("0xlag", Outcome.YES)])  # so that it trades again
    sends = sends_recorded(monkeypatch)
    monkeypatch.setattr(scanning, "screen", screen)
    sent: list[TradeRequest] = []
    scan(["BTC"], now, send=sent.append)
    open_windows = 2  # 0xud1 and 0xud3: the oracle price at each start is one read more
    assert at_screen == [1 + open_windows] and [r.market_id for r in sent] == ["0xlag"]


def test_books_and_cooldowns_are_one_round_trip_and_a_filtered_outcome_gives_its_cooldown_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cooldowns are claimed with the books' read, for every outcome the screen kept; one the
    exact evaluation filters (here the fee-eaten market) must not keep the claim, or its next
    tick could not trade for the whole cooldown."""
    now = datetime.now(UTC)
    seed(now)
    scan(["BTC"], now, send=lambda request: None)  # learns the universe, loads the script
    scanning.release_cooldowns([("0xlag", Outcome.YES)])
    at_dispatch: list[int] = []
    sends = sends_recorded(monkeypatch)
    report = scan(["BTC"], now, send=lambda request: at_dispatch.append(len(sends)))
    open_windows = 2
    assert at_dispatch == [1 + open_windows + 1]  # the symbol's read, the window starts, books and cooldowns
    assert report.reasons["below threshold after fee"] == 1
    cooldowns = sorted(get_redis().keys(scanning.COOLDOWN_KEY.format(market_id="*", outcome="*")))
    assert cooldowns == [scanning.COOLDOWN_KEY.format(market_id="0xlag", outcome="YES")]


def test_an_unchanged_universe_reads_no_document_and_an_expired_one_drops_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between discovery rounds the scanner reads the markets' version, not their documents
    (1,000 markets are ~0.5 MB a tick); a document that expires or is deleted without a write, which
    bumps no version, still leaves the universe within `Universe.REFRESH_SECONDS`."""
    from pm_arb_tasks.state import market_data

    now = datetime.now(UTC)
    seed(now)
    scan(["BTC"], now, send=lambda request: None)  # the full read
    sent_bytes = sends_recorded(monkeypatch)
    scan(["BTC"], now, send=lambda request: None)
    assert sent_bytes and not any(b"pm_arb:market:" in sent for sent in sent_bytes)

    get_redis().delete(market_data.MARKET_KEY.format(market_id="0xfee"))  # gone without a write
    assert scan(["BTC"], now, send=lambda request: None).markets == 7  # still the universe read last
    later = time.monotonic() + market_data.Universe.REFRESH_SECONDS
    monkeypatch.setattr(market_data, "monotonic", lambda: later)
    assert scan(["BTC"], now, send=lambda request: None).markets == 6

"""The live venue with the real py-clob-client-v2 against the simulator, on real PostgreSQL and Redis.

A throwaway key signs real V2 orders; the simulator verifies L1/L2 auth and the EIP-712
signature, matches against its book, and settles trades after a delay. What reached the venue
is counted from its log, so "one venue order" is the venue's own count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import CreateOrderOptions, MarketOrderArgsV2
from py_clob_client_v2.clob_types import OrderType as SdkOrderType
from pydantic import SecretStr
from sqlalchemy import select

from pm_arb_tasks.adapters.polymarket.live import LiveVenue
from pm_arb_tasks.adapters.polymarket.live_client import VenueConfigError
from pm_arb_tasks.db import claims
from pm_arb_tasks.db.models import AlertRow, LiveTradeRow, MarketRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import ExecutionResult, Market, OrderType, TradeRequest, TradeStatus
from pm_arb_tasks.services import execution, outcomes, positions, reconcile
from pm_arb_tasks.services.execution import PreparedOrder
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.sim.server import SimServer, running_sim
from pm_arb_tasks.tasks import venue_ops
from tests.support.trading import approved
from tests.support.venue import VenueLog, best_ask, buy_yes, cache_market, live_stores, new_key, strike_market

pytestmark = pytest.mark.integration
KEY = new_key()


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with running_sim(seed=7, symbols=("BTC",)) as server:
        yield server


@pytest.fixture
def live(sim: SimServer) -> Iterator[tuple[SimServer, Market, VenueLog]]:
    with live_stores(sim.url, KEY):
        market = cache_market(sim.scenario, strike_market(sim.scenario))
        yield sim, market, VenueLog(sim.scenario)


@pytest.fixture
def venue(live: tuple[SimServer, Market, VenueLog]) -> LiveVenue:
    return LiveVenue.from_settings(get_settings())


def marketable(live: tuple[SimServer, Market, VenueLog], amount: str = "5", **kw: object) -> TradeRequest:
    sim, market, _ = live
    return buy_yes(market, amount, best_ask(sim.scenario, market.yes_token_id) + Decimal("0.02"), **kw)


def run(request: TradeRequest, venue: LiveVenue) -> ExecutionResult:
    result = execution.execute(approved(request, "live"), venue, now)
    assert result is not None
    outcomes.record(result)
    return result


def row(trade_id: str) -> LiveTradeRow:
    with session_scope() as session:
        found = session.scalar(select(LiveTradeRow).where(LiveTradeRow.trade_id == trade_id))
    assert found is not None
    return found


# ---- the SDK itself against the simulator --------------------------------------------------------


def test_sdk_derives_credentials_reads_a_book_posts_and_reads_its_status(sim: SimServer) -> None:
    client = ClobClient(sim.url, 137, key=KEY)
    creds = client.create_or_derive_api_key()
    assert client.create_or_derive_api_key() == creds  # the second call derives the same key
    client.set_api_creds(creds)
    token = strike_market(sim.scenario).tokens[0]
    book = client.get_order_book(token)
    price = min(float(a["price"]) for a in book["asks"])
    order = client.builder.build_market_order(
        MarketOrderArgsV2(token_id=token, amount=5.0, side="BUY", price=price),
        CreateOrderOptions(tick_size=book["tick_size"], neg_risk=book["neg_risk"]), version=client.get_version(),
    )
    sim.scenario.settings["settlement_delay_seconds"] = 0.3
    reply = client.post_order(order, SdkOrderType.FOK)  # the SDK's own call waits for settlement
    assert reply["status"] == "matched" and reply["transactionsHashes"]
    assert client.get_order(reply["orderID"]) is None  # a matched FOK order is not listed, its trades are
    trades = client.get_trades()
    assert [t["taker_order_id"] for t in trades] == [reply["orderID"]]
    assert trades[0]["status"] == "CONFIRMED"


# ---- the order path ---------------------------------------------------------------------------------


def test_live_happy_path_fills_once_and_frees_the_executor_fast(live, venue: LiveVenue) -> None:
    sim, market, log = live
    sim.scenario.settings["settlement_delay_seconds"] = 10.0
    request = marketable(live)
    started = now()
    result = execution.execute(approved(request, "live"), venue, now)
    elapsed = (now() - started).total_seconds()
    assert elapsed < 1.0, f"executor busy for {elapsed:.2f}s"
    assert result is not None and result.status is TradeStatus.FILLED, result
    [placed] = log.orders()
    assert result.order_id == result.order_hash == placed["order_id"]  # our EIP-712 hash is the venue's id
    assert result.fee > 0 and result.fill_price is not None and result.fill_price <= request.limit_price
    outcomes.record(result)
    stored = row(request.trade_id)
    assert (stored.status, stored.order_id, stored.fill_price, stored.fee) == (
        "filled", placed["order_id"], result.fill_price, result.fee
    )
    assert stored.slippage is not None and stored.slippage <= 0

    # Reconciliation follows settlement: matched now, confirmed once the venue confirms.
    reconcile.run(venue, now())
    assert row(request.trade_id).settlement == "matched"
    sim.scenario.settings["settlement_delay_seconds"] = 0.0
    reconcile.run(venue, now())
    settled = row(request.trade_id)
    assert (settled.settlement, settled.status, settled.filled_amount) == ("confirmed", "filled", stored.filled_amount)
    assert reconcile.due_rows() == []

    # The position follows the fill, is marked to the book, and settles at resolution.
    with session_scope() as session:
        position = session.scalar(select(PositionRow))
        assert position is not None and position.quantity == stored.filled_amount
        session.add(MarketRow(market_id=market.market_id, kind="strike", tick_size=Decimal("0.01"),
                              min_order_size=Decimal(5), closed=True, winning_outcome="YES"))
    assert positions.settle_resolved(now()) == 1
    with session_scope() as session:
        position = session.scalar(select(PositionRow))
        assert position.status == "settled"
        assert position.realized_pnl == position.quantity - position.cost - position.fees > 0
    assert positions.check_against_venue(venue, now()) == []  # settled positions are not compared


def test_same_decision_twice_posts_once(live, venue: LiveVenue) -> None:
    _, _, log = live
    decision = approved(marketable(live), "live")
    first = execution.execute(decision, venue, now)
    second = execution.execute(decision, venue, now)
    assert first == second and first is not None and first.status is TradeStatus.FILLED
    assert log.posts() == 1 and len(log.orders()) == 1


def signed_and_stored(request: TradeRequest, venue: LiveVenue) -> PreparedOrder:
    """A first delivery's steps up to the post: claim, sign, store the hash (then it dies)."""
    approved(request, "live")
    assert claims.claim(request, "live").won
    order = venue.prepare(request, now())
    assert order.order_hash
    claims.record(execution.signed_outcome(request, venue.mode, order.order_hash, now()))
    return order


def test_redelivery_after_the_post_asks_the_venue_and_posts_nothing(live, venue: LiveVenue) -> None:
    """The first delivery died after posting, before storing its outcome."""
    _, _, log = live
    request = marketable(live)
    order = signed_and_stored(request, venue)
    venue.submit(request, order, now())  # ... and the worker is killed here
    result = execution.execute(approved(request, "live"), venue, now)
    assert result is not None and result.status is TradeStatus.FILLED and result.filled_amount > 0
    assert result.order_hash == order.order_hash
    assert log.posts() == 1 and len(log.orders()) == 1


def test_redelivery_before_the_post_ends_failed_without_posting(live, venue: LiveVenue) -> None:
    _, _, log = live
    request = marketable(live)
    signed_and_stored(request, venue)  # ... killed before the post
    result = run(request, venue)
    assert result.status is TradeStatus.UNKNOWN and log.posts() == 0
    reconcile.run(venue, now() + reconcile.NOT_FOUND_GRACE + timedelta(seconds=1))
    assert row(request.trade_id).status == "failed"
    assert log.posts() == 0

    no_hash = marketable(live)
    approved(no_hash, "live")
    assert claims.claim(no_hash, "live").won  # killed before even signing
    assert run(no_hash, venue).status is TradeStatus.FAILED


def unreachable_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on this process's venue cannot be built (as in a persist worker while the CLOB is down)."""
    monkeypatch.setenv("CLOB_API_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    execution.current_venue.cache_clear()


def test_expired_redelivery_is_accounted_for_without_a_reachable_venue(
    live, venue: LiveVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The persist stage settles an expired redelivery; it must not need the venue to write the row."""
    _, _, log = live
    placed = marketable(live)
    order = signed_and_stored(placed, venue)
    venue.submit(placed, order, now())  # killed before the write; the message comes back expired
    finished = marketable(live)
    execution.execute(approved(finished, "live"), venue, now)  # killed after the write: its outcome is stored
    unreachable_venue(monkeypatch)

    late = execution.settle_unexecuted(approved(placed, "live"), "deadline passed before execution", now)
    assert late is not None and late.status is TradeStatus.UNKNOWN and late.order_hash == order.order_hash
    stored = execution.settle_unexecuted(approved(finished, "live"), "deadline passed before execution", now)
    assert stored is not None and stored.status is TradeStatus.FILLED
    for result in (late, stored):
        outcomes.record(result)
    reconcile.run(venue, now())  # the venue is back: the unknown row becomes what the venue says
    assert row(placed.trade_id).status == row(finished.trade_id).status == "filled"
    assert log.posts() == 2 and len(log.orders()) == 2


def test_a_claim_no_delivery_recorded_is_reconciled_into_a_row(live, venue: LiveVenue) -> None:
    """Every delivery died (or its persist message was lost): the claim alone still ends as a row."""
    _, _, log = live
    posted, never_posted = marketable(live), marketable(live)
    venue.submit(posted, signed_and_stored(posted, venue), now())
    signed_and_stored(never_posted, venue)

    assert reconcile.run(venue, now()).recorded == 0  # too young: a delivery may still record it
    later = now() + reconcile.UNRECORDED_AFTER + timedelta(seconds=1)
    assert reconcile.run(venue, later).recorded == 2
    assert row(posted.trade_id).status == "filled" and row(posted.trade_id).filled_amount > 0
    assert row(never_posted.trade_id).status == "unknown"
    reconcile.run(venue, later + reconcile.NOT_FOUND_GRACE)
    assert row(never_posted.trade_id).status == "failed"
    assert reconcile.run(venue, later + reconcile.NOT_FOUND_GRACE).recorded == 0
    assert log.posts() == 1 and len(log.orders()) == 1


# ---- venue errors: the right status, no exception, no second post -----------------------------------


def test_not_enough_balance_fails_with_an_alert_and_no_post(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings["clob_balances"] = {venue.session.address: "1"}
    result = run(marketable(live), venue)
    assert result.status is TradeStatus.FAILED and "not enough pUSD" in (result.error_message or "")
    assert log.posts() == 0
    with session_scope() as session:
        alert = session.scalar(select(AlertRow).where(AlertRow.kind == "venue_balance"))
    assert alert is not None and alert.priority == 1


def test_balance_gone_at_the_venue_fails_with_the_venues_message(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings["clob_post_faults"] = ["balance"]
    result = run(marketable(live), venue)
    assert result.status is TradeStatus.FAILED and "not enough balance / allowance" in (result.error_message or "")
    assert log.posts() == 1 and log.orders() == []


def test_below_the_minimum_size_is_rejected_without_posting(live, venue: LiveVenue) -> None:
    _, _, log = live
    result = run(marketable(live, amount="1"), venue)
    assert result.status is TradeStatus.REJECTED and "minimum order size" in (result.error_message or "")
    assert log.posts() == 0


def test_a_tick_size_change_is_rejected_once_then_followed(live, venue: LiveVenue) -> None:
    sim, market, log = live
    venue.session.rules(market.yes_token_id)  # cached at the old tick
    sim_market, _ = sim.scenario.sim_market_for_token(market.yes_token_id)
    request = buy_yes(market, "5", Decimal("0.97"))
    sim_market.tick = Decimal("0.1")
    first = run(request, venue)
    assert first.status is TradeStatus.REJECTED and "tick size" in (first.error_message or "")
    second = run(buy_yes(market, "5", Decimal("0.97")), venue)
    assert second.status is TradeStatus.FILLED
    assert log.posts() == 2 and len(log.orders()) == 1


def test_401_rederives_credentials_and_succeeds(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings["clob_post_faults"] = ["401"]
    result = run(marketable(live), venue)
    assert result.status is TradeStatus.FILLED
    assert log.posts() == 2 and len(log.orders()) == 1  # the refused attempt placed nothing


def test_429_fails_without_retry(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings["clob_post_faults"] = ["429"]
    result = run(marketable(live), venue)
    assert result.status is TradeStatus.FAILED and "429" in (result.error_message or "")
    assert log.posts() == 1 and log.orders() == []


def test_500_is_unknown_until_reconciliation_finds_nothing(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings["clob_post_faults"] = ["500"]
    request = marketable(live)
    assert run(request, venue).status is TradeStatus.UNKNOWN
    reconcile.run(venue, now())
    assert row(request.trade_id).status == "unknown"  # within the grace period nothing is concluded
    reconcile.run(venue, now() + reconcile.NOT_FOUND_GRACE + timedelta(seconds=1))
    assert row(request.trade_id).status == "failed"
    assert log.posts() == 1 and log.orders() == []


def test_timeout_is_unknown_and_reconciles_to_the_fill(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings.update(clob_post_faults=["timeout"], clob_timeout_seconds=4.5)
    request = marketable(live)
    result = run(request, venue)
    assert result.status is TradeStatus.UNKNOWN and "no answer" in (result.error_message or "")
    reconcile.run(venue, now())
    stored = row(request.trade_id)
    assert stored.status == "filled" and stored.filled_amount > 0 and stored.order_id == result.order_hash
    with session_scope() as session:
        assert session.scalar(select(PositionRow.quantity)) == stored.filled_amount
    assert log.posts() == 1 and len(log.orders()) == 1


def test_delayed_is_unknown_and_reconciles_once_matched(live, venue: LiveVenue) -> None:
    sim, _, log = live
    sim.scenario.settings.update(clob_post_faults=["delayed"], clob_delayed_seconds=0.0)
    request = marketable(live)
    result = run(request, venue)
    assert result.status is TradeStatus.UNKNOWN and "delayed" in (result.error_message or "")
    assert venue_ops.reconcile_orders() == {"checked": 1, "changed": 1, "errors": 0, "recorded": 0}  # the beat task
    assert row(request.trade_id).status == "filled"
    assert log.posts() == 1 and len(log.orders()) == 1


def test_fok_without_liquidity_fails_with_the_venues_message(live, venue: LiveVenue) -> None:
    sim, market, log = live
    request = buy_yes(market, "5", best_ask(sim.scenario, market.yes_token_id) - Decimal("0.05"))
    result = run(request, venue)
    assert result.status is TradeStatus.FAILED and "FOK" in (result.error_message or "")
    assert log.posts() == 1 and log.orders() == []


def test_fak_takes_what_is_there(live, venue: LiveVenue) -> None:
    sim, market, _ = live
    limit = best_ask(sim.scenario, market.yes_token_id)
    result = run(buy_yes(market, "500", limit, order_type=OrderType.FAK), venue)
    assert result.status is TradeStatus.PARTIAL and 0 < result.cost < 500


# ---- configuration ----------------------------------------------------------------------------------


def test_unreachable_clob_fails_fast_without_secrets(live) -> None:
    settings = get_settings().model_copy(update={"clob_api_url": "http://127.0.0.1:9"})
    with pytest.raises(VenueConfigError) as failure:
        LiveVenue.from_settings(settings)
    text = str(failure.value)
    assert "127.0.0.1:9" in text and KEY not in text and KEY[2:] not in text


def test_proxy_wallet_without_funder_is_a_config_error(live) -> None:
    settings = get_settings().model_copy(update={"polymarket_signature_type": 1})
    with pytest.raises(VenueConfigError, match="POLYMARKET_FUNDER"):
        LiveVenue.from_settings(settings)


def test_stale_configured_credentials_are_rederived_once(live) -> None:
    stale = {
        "polymarket_api_key": SecretStr("0" * 36),
        "polymarket_secret": SecretStr("c2VjcmV0c2VjcmV0c2VjcmV0"),
        "polymarket_passphrase": SecretStr("x" * 64),
    }
    venue = LiveVenue.from_settings(get_settings().model_copy(update=stale))
    assert venue.session.client.creds is not None and venue.session.client.creds.api_key != "0" * 36


# ---- secrets ------------------------------------------------------------------------------------------


def test_no_secret_in_logs_database_results_redis_or_venue_log(
    live, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import text

    from pm_arb_tasks.db.models import Base
    from pm_arb_tasks.state.redis_client import get_redis

    sim = live[0]
    caplog.set_level("DEBUG")  # no redaction filter installed: nothing may even try to log a secret
    venue = LiveVenue.from_settings(get_settings())
    creds = venue.session.client.creds
    assert creds is not None
    sim.scenario.settings["clob_post_faults"] = ["401", "timeout", "500"]
    sim.scenario.settings["clob_timeout_seconds"] = 3.5
    results = [run(marketable(live), venue) for _ in range(4)]
    results.append(run(marketable(live, amount="1"), venue))
    reconcile.run(venue, now() + reconcile.NOT_FOUND_GRACE + timedelta(seconds=1))
    assert {r.status for r in results} >= {TradeStatus.FILLED, TradeStatus.UNKNOWN, TradeStatus.REJECTED}

    haystack = [caplog.text, *capfd.readouterr(), *(r.model_dump_json() for r in results), str(sim.scenario.log())]
    with session_scope() as session:
        for table in Base.metadata.sorted_tables:
            haystack += [str(tuple(r)) for r in session.execute(text(f"SELECT * FROM {table.name}"))]
    redis = get_redis()
    haystack += [f"{k} {redis.dump(k)!r}" for k in redis.scan_iter()]
    everything = "\n".join(haystack)
    assert "filled" in everything  # the search does cover the data
    for secret in (KEY, KEY[2:], creds.api_secret, creds.api_passphrase):
        assert secret not in everything


# ---- positions and resting orders ---------------------------------------------------------------------


def test_position_check_alerts_when_ours_differs_from_the_venue(live, venue: LiveVenue) -> None:
    assert run(marketable(live), venue).status is TradeStatus.FILLED
    assert positions.check_against_venue(venue, now()) == []
    with session_scope() as session:
        position = session.scalar(select(PositionRow))
        position.quantity += 10  # a fill we think we have and the venue does not
    [problem] = positions.check_against_venue(venue, now())
    assert "the venue" in problem
    with session_scope() as session:
        alert = session.scalar(select(AlertRow).where(AlertRow.kind == "position_mismatch"))
    assert alert is not None and alert.priority == 1


def test_resting_orders_are_cancelled_past_their_deadline_and_by_the_operator(live, venue: LiveVenue) -> None:
    from pm_arb_tasks.adapters.polymarket.live import cancel_open_orders

    sim, _, log = live
    sim.scenario.settings.update(clob_post_faults=["delayed", "delayed"], clob_delayed_seconds=600)
    stale = marketable(live, ttl=2)
    assert run(stale, venue).status is TradeStatus.UNKNOWN
    reconcile.run(venue, stale.deadline + reconcile.NOT_FOUND_GRACE)
    assert row(stale.trade_id).status == "failed"  # cancelled at the venue, nothing filled

    assert run(marketable(live), venue).status is TradeStatus.UNKNOWN
    assert cancel_open_orders() == 1 and cancel_open_orders() == 0
    assert log.posts() == 2

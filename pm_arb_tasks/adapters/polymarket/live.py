"""The live venue: real orders on Polymarket's CLOB through py-clob-client-v2.

An order's life here: `prepare` checks the venue's rules for the token and our collateral, then
signs a marketable buy and returns its EIP-712 hash (the id the venue will give it), which the
executor stores with its claim before `submit` posts it exactly once. Every venue answer becomes
an `ExecutionResult`; nothing the venue does raises out of `submit`. Whatever the reply leaves
open (timeout, 5xx, delayed, settlement) is followed by `examine`, which `recover` (a redelivered
request) and reconciliation share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from py_clob_client_v2.order_utils.model.order_data_v2 import SignedOrderV2

from pm_arb_tasks.adapters.polymarket.live_client import (
    ClobSession,
    Collateral,
    PostReply,
    VenueConfigError,
    VenueError,
    describe,
)
from pm_arb_tasks.adapters.polymarket.order_mapping import (
    Settlement,
    VenueFill,
    error_message,
    fill_from_trades,
    fill_status,
    is_balance_error,
    is_tick_error,
    is_version_error,
    parse_decimal,
    price_on_tick,
    spend_for,
    stored,
    verdict_for_error,
)
from pm_arb_tasks.db.models import MarketRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.fees import FALLBACK_SCHEDULE, schedule_for, taker_fee_per_share
from pm_arb_tasks.domain.models import ExecutionResult, FeeSchedule, Side, TradeRequest, TradeStatus
from pm_arb_tasks.security import redact
from pm_arb_tasks.services.alerts import raise_alert
from pm_arb_tasks.services.execution import OrderRefused, PreparedOrder, result_for
from pm_arb_tasks.settings import Settings, get_settings
from pm_arb_tasks.state.market_data import get_market

log = logging.getLogger(__name__)
MODE = "live"
TRADE_LOOKBACK = timedelta(minutes=5)  # how far before the request's tick to look for its trades


@dataclass(frozen=True)
class SignedBuy:
    """The in-memory part of a prepared live order (never serialised, never logged)."""

    order: SignedOrderV2 = field(repr=False)
    order_type: str
    spend: Decimal
    schedule: FeeSchedule | None


@dataclass(frozen=True)
class Examination:
    """What the venue says about one order: our result, its settlement, its venue status."""

    result: ExecutionResult
    settlement: str | None
    venue_state: str  # the order record's status ("LIVE", "MATCHED", "CANCELED", ...), "" if unlisted


def fee_schedule(market_id: str) -> FeeSchedule | None:
    """The market's taker fee schedule: the cached market, then the markets table, else the fallback."""
    market = get_market(market_id)
    if market is not None:
        return schedule_for(market)
    with session_scope() as session:
        row = session.get(MarketRow, market_id)
    if row is not None:
        if not row.fees_enabled:
            return None
        if row.fee_rate is not None:
            return FeeSchedule(rate=row.fee_rate, exponent=row.fee_exponent or Decimal(1))
        return FALLBACK_SCHEDULE
    log.warning("market %s unknown: charging the fallback fee schedule", market_id)
    return FALLBACK_SCHEDULE


def _parse_time(value: Any) -> datetime | None:
    seconds = parse_decimal(value)
    if seconds is None or seconds <= 0:
        return None
    if seconds > 10**11:  # milliseconds
        seconds /= 1000
    return datetime.fromtimestamp(float(seconds), UTC)


def _alert_quietly(**alert: Any) -> None:
    """An alert that cannot be recorded must not turn a clean refusal into a crash."""
    try:
        raise_alert(**alert)
    except Exception:
        log.exception("could not record alert %s", alert.get("alert_id"))


class LiveVenue:
    mode = MODE

    def __init__(self, session: ClobSession) -> None:
        self.session = session

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveVenue:
        """Connect and prove the credentials work, or raise VenueConfigError saying what to fix."""
        session = ClobSession(settings)
        validate(session)
        return cls(session)

    # ---- the order path ------------------------------------------------------------------

    def prepare(self, request: TradeRequest, now: datetime) -> PreparedOrder:
        if request.side is not Side.BUY:
            raise OrderRefused(TradeStatus.REJECTED, "the live venue only buys")
        try:
            return self._prepare(request)
        except OrderRefused:
            raise
        except VenueConfigError as exc:
            raise OrderRefused(TradeStatus.REJECTED, f"venue configuration: {exc}") from None
        except Exception as exc:  # before the post nothing is at the venue: a clean failure
            raise OrderRefused(TradeStatus.FAILED, f"order not sent: {describe(exc)}") from None

    def _prepare(self, request: TradeRequest) -> PreparedOrder:
        schedule = fee_schedule(request.market_id)
        rules = self.session.rules(request.token_id)
        price = price_on_tick(request.limit_price, rules.tick_size)
        if not rules.tick_size <= price <= 1 - rules.tick_size:
            raise OrderRefused(
                TradeStatus.REJECTED, f"limit {request.limit_price} is off the tradable range at tick {rules.tick_size}"
            )
        spend = spend_for(request.amount)
        shares = spend / price
        if shares < rules.min_order_size:
            raise OrderRefused(
                TradeStatus.REJECTED,
                f"{shares:.2f} shares is below the market's minimum order size of {rules.min_order_size}",
            )
        needed = spend + shares * taker_fee_per_share(price, schedule)
        self._require_collateral(request, needed, self.session.exchange_for(rules.neg_risk))
        order, order_hash = self.session.sign_buy(request.token_id, spend, price, request.order_type.value, rules)
        return PreparedOrder(order_hash=order_hash, payload=SignedBuy(order, request.order_type.value, spend, schedule))

    def _require_collateral(self, request: TradeRequest, needed: Decimal, exchange: str) -> None:
        collateral = self.session.collateral()
        problem = shortfall(collateral, needed, exchange)
        if problem:
            self._balance_alert(request, problem)
            raise OrderRefused(TradeStatus.FAILED, problem)

    def _balance_alert(self, request: TradeRequest, problem: str) -> None:
        _alert_quietly(
            kind="venue_balance", priority=1, title="Order refused: not enough collateral",
            message=redact(f"{request.market_id[:16]} {request.outcome.value} ${request.amount}: {problem}"),
            alert_id=f"balance-{request.request_id}",
        )

    def submit(self, request: TradeRequest, order: PreparedOrder, now: datetime) -> ExecutionResult:
        signed: SignedBuy = order.payload
        reply = self.session.post(signed.order, signed.order_type)
        if reply.http_status == 401:
            # Refused before matching, so the same signed order can go again with fresh credentials.
            try:
                self.session.rederive()
            except VenueError as exc:
                return self._result(request, TradeStatus.REJECTED, f"credentials rejected (HTTP 401): {exc}", now)
            reply = self.session.post(signed.order, signed.order_type)
        return self._from_reply(request, order.order_hash or "", signed, reply, now)

    def _from_reply(
        self, request: TradeRequest, order_hash: str, signed: SignedBuy, reply: PostReply, now: datetime
    ) -> ExecutionResult:
        ids: dict[str, Any] = {"order_hash": order_hash, "order_id": order_hash}

        def outcome(status: TradeStatus, message: str, **fields: Any) -> ExecutionResult:
            return self._result(request, status, message, now, **{**ids, **fields})

        if reply.http_status is None:
            if not reply.sent:
                return outcome(TradeStatus.FAILED, f"venue unreachable, order not sent ({reply.transport_error})")
            return outcome(
                TradeStatus.UNKNOWN, f"no answer from the venue ({reply.transport_error}); reconciliation decides"
            )
        body = reply.body
        if reply.http_status != 200 or not isinstance(body, dict) or body.get("success") is False:
            message = error_message(body, f"HTTP {reply.http_status}")
            self._after_refusal(request, message)
            verdict = verdict_for_error(reply.http_status if reply.http_status != 200 else 400, message)
            return outcome(verdict.status, verdict.message)
        order_id = str(body.get("orderID") or order_hash)
        if order_id.lower() != order_hash.lower():
            log.error("venue id %s differs from the signed order's hash %s", order_id, order_hash)
        ids["order_id"] = order_id
        ids["venue_trade_ids"] = tuple(str(t) for t in body.get("tradeIDs") or () if t)
        state = str(body.get("status", "")).lower()
        if state == "matched":
            making, taking = parse_decimal(body.get("makingAmount")), parse_decimal(body.get("takingAmount"))
            if making is None or taking is None or taking <= 0 or making <= 0:
                return outcome(TradeStatus.UNKNOWN, "matched, amounts unreadable; reconciliation decides")
            price = stored(making / taking)
            fee = stored(taking * taker_fee_per_share(price, signed.schedule))
            return outcome(
                fill_status(taking, making, signed.spend), "",
                filled_amount=taking, fill_price=price, fee=fee, filled_at=now,
            )
        if state == "live":
            return outcome(TradeStatus.PENDING, "resting at the venue; reconciliation follows it")
        if state == "delayed":
            return outcome(TradeStatus.UNKNOWN, "delayed by the venue; reconciliation follows it")
        if state == "unmatched":
            return outcome(TradeStatus.FAILED, "unmatched: nothing at or below the limit")
        return outcome(TradeStatus.UNKNOWN, f"unexpected venue status {state!r}")

    def _after_refusal(self, request: TradeRequest, message: str) -> None:
        if is_tick_error(message):
            self.session.forget_rules(request.token_id)
        if is_version_error(message):
            self.session.forget_version()
        if is_balance_error(message):
            self._balance_alert(request, f"venue: {message}")

    def recover(self, request: TradeRequest, order_hash: str | None, now: datetime) -> ExecutionResult:
        """A redelivered request: report what the venue has for the stored hash; never post."""
        if not order_hash:
            return self._result(request, TradeStatus.FAILED, "interrupted before post: nothing was sent", now)
        try:
            return self.examine(request, order_hash, (), now).result
        except Exception as exc:  # the venue may have it: unknown, reconciliation asks again
            return self._result(
                request, TradeStatus.UNKNOWN, f"could not ask the venue about the order: {describe(exc)}", now,
                order_hash=order_hash, order_id=order_hash,
            )

    # ---- looking orders up (recovery and reconciliation) ---------------------------------

    def examine(
        self, request: TradeRequest, order_hash: str, trade_ids: tuple[str, ...], now: datetime
    ) -> Examination:
        """Order record, then its trades; raises VenueError when the venue cannot be asked."""
        record = None if trade_ids else self.session.order(order_hash)
        ids = list(trade_ids) or [str(t) for t in (record or {}).get("associate_trades") or () if t]
        if ids:
            trades = [trade for trade_id in ids for trade in self.session.trades(trade_id=trade_id)]
        else:
            after = int((request.tick_at - TRADE_LOOKBACK).timestamp())
            trades = self.session.trades(asset_id=request.token_id, after=after)
        fill = fill_from_trades(trades, order_hash, fee_schedule(request.market_id))
        state = str((record or {}).get("status", "")).upper()
        status, message = _status_of(fill, state, record is not None, spend_for(request.amount))
        matched_at = min(
            (t for t in (_parse_time(tr.get("match_time")) for tr in trades if isinstance(tr, dict)) if t),
            default=None,
        )
        result = self._result(
            request, status, message, now,
            filled_amount=fill.shares, fill_price=fill.vwap, fee=fill.fee, order_id=order_hash,
            order_hash=order_hash, venue_trade_ids=fill.trade_ids or tuple(ids),
            filled_at=(matched_at or now) if fill.shares else None,
        )
        return Examination(result, fill.settlement, state)

    def cancel(self, order_id: str) -> None:
        self.session.cancel(order_id)

    def token_balance(self, token_id: str) -> Decimal:
        return self.session.token_balance(token_id)

    def venue_position(self, token_id: str, since: datetime) -> tuple[Decimal, Decimal | None]:
        """Shares held at the venue and their average buy price from our trades since `since`."""
        shares = self.session.token_balance(token_id)
        trades = self.session.trades(asset_id=token_id, after=int(since.timestamp()))
        bought, cost = Decimal(0), Decimal(0)
        for trade in trades:
            if (
                str(trade.get("status", "")).upper() == "FAILED"
                or str(trade.get("side", "")).upper() != "BUY"
                or str(trade.get("trader_side", "TAKER")).upper() != "TAKER"
            ):
                continue
            order_id = str(trade.get("taker_order_id", ""))
            fill = fill_from_trades([trade], order_id, None)
            bought += fill.shares
            cost += fill.cost
        return shares, (cost / bought if bought else None)

    def _result(
        self, request: TradeRequest, status: TradeStatus, message: str, now: datetime, **fields: Any
    ) -> ExecutionResult:
        return result_for(request, MODE, status, redact(message), now, **fields)


def _status_of(fill: VenueFill, state: str, listed: bool, spend: Decimal) -> tuple[TradeStatus, str]:
    if fill.shares > 0:
        if state == "LIVE":
            return TradeStatus.PARTIAL, "partly filled, rest resting at the venue"
        return fill_status(fill.shares, fill.cost, spend), ""
    if state == "LIVE":
        return TradeStatus.PENDING, "resting at the venue"
    if state == "DELAYED":
        return TradeStatus.UNKNOWN, "delayed at the venue"
    if fill.settlement == Settlement.FAILED:
        return TradeStatus.FAILED, "the match failed to settle on chain; nothing bought"
    if state == "MATCHED":
        return TradeStatus.UNKNOWN, "matched at the venue, trades not visible yet"
    if listed:
        return TradeStatus.FAILED, f"nothing filled (venue status {state or 'unknown'})"
    return TradeStatus.UNKNOWN, "not found at the venue"


def shortfall(collateral: Collateral, needed: Decimal, exchange: str) -> str:
    """Why `collateral` cannot pay `needed` USD through `exchange`; "" when it can."""
    if collateral.balance < needed:
        return f"not enough pUSD: balance {collateral.balance:.2f}, the order needs {needed:.2f}"
    allowance = collateral.allowance(exchange)
    if allowance < needed:
        return f"exchange {exchange} may spend only {allowance:.2f} pUSD, the order needs {needed:.2f} (approve it)"
    return ""


def validate(session: ClobSession) -> Collateral:
    """Prove the CLOB is reachable and accepts our credentials; the collateral it reports."""
    host = session.client.host
    try:
        session.server_time()
        collateral = session.collateral()
        version = session.order_version()
    except VenueError as exc:
        raise VenueConfigError(
            redact(
                f"the Polymarket CLOB at {host} did not accept this account ({exc}); check POLYMARKET_PRIVATE_KEY, "
                "or POLYMARKET_API_KEY/SECRET/PASSPHRASE (leave them empty to derive them from the key)"
            )
        ) from None
    if version != 2:
        raise VenueConfigError(f"the CLOB at {host} asks for order version {version}; this build signs V2 orders")
    return collateral


@dataclass
class Readiness:
    """`pm-arb check`: what is configured, what the venue reports, and what is missing."""

    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def readiness(settings: Settings) -> Readiness:
    report = Readiness()
    try:
        session = ClobSession(settings)
    except VenueConfigError as exc:
        report.problems.append(str(exc))
        return report
    report.facts += [
        f"CLOB: {settings.clob_api_url} (chain {settings.polymarket_chain_id})",
        f"signer: {session.address}, funds held by: {session.funder}, signature type {int(session.signature_type)}",
        "API credentials: " + ("configured" if session.has_creds else "derived from the private key"),
    ]
    try:
        validate(session)
        collateral = session.refresh_collateral()
    except (VenueConfigError, VenueError) as exc:
        report.problems.append(redact(str(exc)))
        return report
    report.facts.append(f"pUSD collateral: {collateral.balance:.2f}")
    if collateral.balance <= 0:
        report.problems.append(f"no pUSD collateral: deposit pUSD to {session.funder}")
    contracts = session.contracts
    spenders = {
        "exchange (V2)": contracts.exchange_v2,
        "neg-risk exchange (V2)": contracts.neg_risk_exchange_v2,
        "neg-risk adapter": contracts.neg_risk_adapter,
    }
    for name, address in spenders.items():
        allowance = collateral.allowance(address)
        report.facts.append(f"allowance for {name} {address}: {allowance:.2f}")
        if allowance <= 0:
            report.problems.append(f"no pUSD allowance for the {name} {address}: approve it from {session.funder}")
    return report


def cancel_open_orders() -> int:
    """Cancel every resting order of this account at the venue (`pm-arb stop --cancel-open`)."""
    session = ClobSession(get_settings())
    canceled = session.cancel_all()
    log.warning("cancelled %d resting order(s) at the venue", len(canceled))
    return len(canceled)


def derive_credentials(settings: Settings) -> tuple[str, str, str]:
    """(api key, secret, passphrase) derived from the private key, for `pm-arb creds`."""
    session = ClobSession(settings)
    creds = session.rederive()
    return creds.api_key, creds.api_secret, creds.api_passphrase


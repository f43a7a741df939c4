"""The py-clob-client-v2 session the live venue uses: credentials, market rules, signing, one post.

Everything venue-specific about talking to the CLOB is here, so `live.py` reads as the order's
life cycle. Two deliberate departures from the SDK's convenience methods:

- `post` sends the SDK's own payload (`order_to_json_v2`) with the SDK's L2 headers in ONE
  request with our own timeout. `ClobClient.post_order` would, for a FOK/FAK match that comes
  back with `tradeIDs` but no `transactionsHashes` (what Polymarket returns), poll
  `/data/trades` for up to 30 s, freezing the single executor; and with `retry_on_error` it
  would post a second time. Settlement is followed by reconciliation instead.
- orders are built by the SDK's `OrderBuilder` with the tick size and neg-risk flag we read
  from the venue's book (cached briefly, dropped when the venue says the tick is wrong), rather
  than through `create_order`, whose tick-size cache never expires.

Secrets stay inside the `ClobClient`; nothing here formats a key, secret or passphrase, and
credentials derived at run time are registered with the log redaction as soon as they arrive.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import (
    ApiCreds,
    AssetType,
    BalanceAllowanceParams,
    CreateOrderOptions,
    MarketOrderArgsV2,
    OrderPayload,
    RequestArgs,
    TradeParams,
)
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.endpoints import POST_ORDER
from py_clob_client_v2.exceptions import PolyApiException, PolyException
from py_clob_client_v2.headers.headers import create_level_2_headers
from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG
from py_clob_client_v2.order_builder.constants import BUY
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2, SignatureTypeV2
from py_clob_client_v2.order_utils.model.order_data_v2 import SignedOrderV2, order_to_json_v2

from pm_arb_tasks.adapters.polymarket.order_mapping import MarketRules, parse_decimal, rules_from_book
from pm_arb_tasks.security import register_secrets
from pm_arb_tasks.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

ORDER_VERSION = 2  # CTF Exchange V2; V1 orders were retired on 2026-04-28
TOKEN_DECIMALS = Decimal(10) ** 6  # pUSD and outcome tokens both have 6 decimals
RULES_TTL_SECONDS = 30.0
FLOAT_NUDGE = 1e-9
ANY_SPENDER = "*"  # older balance answers carry one allowance for every exchange
# The post must answer well inside the execute task's 8 s soft limit; after this the outcome is unknown.
POST_TIMEOUT = httpx.Timeout(connect=2.0, read=3.0, write=2.0, pool=2.0)


class VenueError(Exception):
    """A read from the CLOB failed (unreachable, refused, unreadable); no order was affected."""


class VenueConfigError(Exception):
    """The configuration or credentials cannot trade; the message says what to fix (no secrets)."""


@dataclass(frozen=True)
class PostReply:
    """The CLOB's answer to one post; `http_status` None means no answer arrived."""

    http_status: int | None
    body: Any
    transport_error: str = ""
    sent: bool = True  # False only when no connection was ever made: the venue cannot have it


@dataclass(frozen=True)
class Collateral:
    balance: Decimal  # pUSD
    allowances: dict[str, Decimal]

    def allowance(self, spender: str) -> Decimal:
        for address, amount in self.allowances.items():
            if address.lower() == spender.lower() or address == ANY_SPENDER:
                return amount
        return Decimal(0)


def _usd(raw: Any) -> Decimal:
    """6-decimal token units to USD/shares; allowances are often MAX_UINT256 (78 digits)."""
    value = parse_decimal(raw, digits=80)
    return value / TOKEN_DECIMALS if value is not None else Decimal(0)


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of an SDK or HTTP failure."""
    if isinstance(exc, PolyApiException):
        return f"HTTP {exc.status_code}: {exc.error_msg}" if exc.status_code else str(exc.error_msg)
    if isinstance(exc, PolyException):
        return str(exc.msg)
    return f"{type(exc).__name__}: {exc}"


class ClobSession:
    """One authenticated py-clob-client-v2 client plus the few caches the order path needs."""

    def __init__(self, settings: Settings) -> None:
        key = settings.polymarket_private_key.get_secret_value()
        if not key:
            raise VenueConfigError("POLYMARKET_PRIVATE_KEY is not set (0x + 64 hex characters)")
        self.chain_id = settings.polymarket_chain_id
        try:
            self.contracts = get_contract_config(self.chain_id)
        except Exception as exc:
            raise VenueConfigError(f"POLYMARKET_CHAIN_ID {self.chain_id} is not a Polymarket chain") from exc
        signature_type = SignatureTypeV2(settings.polymarket_signature_type)
        funder = settings.polymarket_funder or None
        if signature_type != SignatureTypeV2.EOA and not funder:
            raise VenueConfigError(
                f"POLYMARKET_SIGNATURE_TYPE={int(signature_type)} (proxy/safe/deposit wallet) needs "
                "POLYMARKET_FUNDER, the wallet address that holds the funds"
            )
        creds = None
        if settings.has_l2_creds:
            creds = ApiCreds(
                api_key=settings.polymarket_api_key.get_secret_value(),
                api_secret=settings.polymarket_secret.get_secret_value(),
                api_passphrase=settings.polymarket_passphrase.get_secret_value(),
            )
        self.client = ClobClient(
            settings.clob_api_url, self.chain_id, key=key, creds=creds,
            signature_type=signature_type, funder=funder,
        )
        self.signature_type = signature_type
        if signature_type == SignatureTypeV2.EOA and funder and funder.lower() != self.address.lower():
            raise VenueConfigError("POLYMARKET_FUNDER differs from the key's address; EOA orders (type 0) need none")
        self._http = httpx.Client(http2=True, timeout=POST_TIMEOUT)
        self._rules: dict[str, tuple[float, MarketRules]] = {}
        self._version: int | None = None

    # ---- identity and credentials -------------------------------------------------------

    @property
    def address(self) -> str:
        """The signing key's address (public)."""
        return self.client.get_address()

    @property
    def funder(self) -> str:
        """The address that holds collateral and positions."""
        return self.client.builder.funder

    @property
    def has_creds(self) -> bool:
        return self.client.creds is not None

    def ensure_creds(self) -> None:
        if self.client.creds is None:
            self.rederive()

    def rederive(self) -> ApiCreds:
        """Create or derive the L2 credentials from the private key (L1 signature)."""
        try:
            creds = self.client.create_or_derive_api_key()
        except Exception as exc:
            raise VenueError(f"could not derive API credentials: {describe(exc)}") from None
        # No setting holds derived credentials, so the log redaction learns them here, before
        # anything (this module, the SDK, an exception's text) can write them anywhere.
        register_secrets(creds.api_key or "", creds.api_secret or "", creds.api_passphrase or "")
        if not creds.api_key:
            raise VenueError("the CLOB returned no API credentials")
        self.client.set_api_creds(creds)
        log.info("Polymarket API credentials derived for %s", self.address)
        return creds

    def authed(self, call: Callable[[], T]) -> T:
        """Run an L2 call; on HTTP 401 re-derive the credentials once and run it again."""
        self.ensure_creds()
        try:
            return call()
        except PolyApiException as exc:
            if exc.status_code != 401:
                raise VenueError(describe(exc)) from None
        log.warning("CLOB answered 401: re-deriving API credentials once")
        self.rederive()
        try:
            return call()
        except PolyApiException as exc:
            raise VenueError(describe(exc)) from None

    # ---- market rules, version, signing --------------------------------------------------

    def rules(self, token_id: str) -> MarketRules:
        cached = self._rules.get(token_id)
        if cached and time.monotonic() - cached[0] < RULES_TTL_SECONDS:
            return cached[1]
        try:
            book = self.client.get_order_book(token_id)
        except PolyApiException as exc:
            self.forget_rules(token_id)
            raise VenueError(f"order book for token {token_id[:16]}: {describe(exc)}") from None
        rules = rules_from_book(book)
        if rules is None:
            raise VenueError(f"order book for token {token_id[:16]} has no usable tick size / minimum size")
        self._rules[token_id] = (time.monotonic(), rules)
        return rules

    def forget_rules(self, token_id: str) -> None:
        self._rules.pop(token_id, None)

    def order_version(self) -> int:
        if self._version is None:
            self._version = int(self.client.get_version())
        return self._version

    def forget_version(self) -> None:
        self._version = None

    def exchange_for(self, neg_risk: bool) -> str:
        return self.contracts.neg_risk_exchange_v2 if neg_risk else self.contracts.exchange_v2

    def sign_buy(
        self, token_id: str, spend: Decimal, price: Decimal, order_type: str, rules: MarketRules
    ) -> tuple[SignedOrderV2, str]:
        """A signed marketable buy (`spend` USD, worst price `price`) and its EIP-712 order hash."""
        version = self.order_version()
        if version != ORDER_VERSION:
            raise VenueConfigError(f"the CLOB asks for order version {version}; this build signs V2 orders")
        tick = format(rules.tick_size, "f")
        if tick not in ROUNDING_CONFIG:
            raise VenueError(f"unsupported tick size {tick}")
        # The builder floors price and amount with float arithmetic (0.57 * 100 = 56.99999...), which
        # would cost a tick (0.57 -> 0.56) or a cent; both are already on their grid, so a nudge far
        # below the grid keeps them exactly where they are.
        args = MarketOrderArgsV2(
            token_id=token_id, amount=float(spend) + FLOAT_NUDGE, side=BUY, price=float(price) + FLOAT_NUDGE,
            order_type=order_type,
        )
        order = self.client.builder.build_market_order(
            args, CreateOrderOptions(tick_size=tick, neg_risk=rules.neg_risk), version=version
        )
        return order, self.order_hash(order, rules.neg_risk)

    def order_hash(self, order: SignedOrderV2, neg_risk: bool) -> str:
        """The id the venue gives the order: the EIP-712 hash of the order under the exchange domain."""
        builder = ExchangeOrderBuilderV2(
            self.exchange_for(neg_risk), self.chain_id, signer=None, domain_version=str(ORDER_VERSION)
        )
        return builder.build_order_hash(builder.build_order_typed_data(order))

    # ---- the post ------------------------------------------------------------------------

    def post(self, order: SignedOrderV2, order_type: str) -> PostReply:
        """Exactly one HTTP request carrying the signed order; never retried here."""
        self.ensure_creds()
        creds = self.client.creds
        payload = order_to_json_v2(order, creds.api_key, order_type)
        serialized = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        headers = create_level_2_headers(
            self.client.signer, creds, RequestArgs("POST", POST_ORDER, payload, serialized)
        )
        headers.update({"Content-Type": "application/json", "Accept": "*/*", "User-Agent": "pm-arb-tasks"})
        try:
            response = self._http.post(f"{self.client.host}{POST_ORDER}", content=serialized, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return PostReply(None, None, f"could not connect: {type(exc).__name__}", sent=False)
        except httpx.HTTPError as exc:
            return PostReply(None, None, f"{type(exc).__name__} after sending")
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:300]
        return PostReply(response.status_code, body)

    # ---- reads ---------------------------------------------------------------------------

    def collateral(self) -> Collateral:
        params = BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)
        answer = self.authed(lambda: self.client.get_balance_allowance(params))
        return _collateral(answer)

    def refresh_collateral(self) -> Collateral:
        """Ask the CLOB to re-read the chain first (after a deposit or an approval)."""
        params = BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)
        self.authed(lambda: self.client.update_balance_allowance(params))
        return self.collateral()

    def token_balance(self, token_id: str) -> Decimal:
        params = BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id=token_id)
        answer = self.authed(lambda: self.client.get_balance_allowance(params))
        return _usd(answer.get("balance")) if isinstance(answer, dict) else Decimal(0)

    def order(self, order_id: str) -> dict | None:
        """The venue's order record; None when it lists none (FOK/FAK orders that matched are not listed)."""
        answer = self.authed(lambda: self.client.get_order(order_id))
        return answer if isinstance(answer, dict) and answer else None

    def trades(self, *, trade_id: str | None = None, asset_id: str | None = None, after: int | None = None) -> list:
        params = TradeParams(id=trade_id, asset_id=asset_id, after=after)
        answer = self.authed(lambda: self.client.get_trades(params, only_first_page=trade_id is not None))
        return [t for t in answer if isinstance(t, dict)] if isinstance(answer, list) else []

    def open_orders(self) -> list[dict]:
        answer = self.authed(lambda: self.client.get_open_orders())
        return [o for o in answer if isinstance(o, dict)] if isinstance(answer, list) else []

    def cancel(self, order_id: str) -> dict:
        answer = self.authed(lambda: self.client.cancel_order(OrderPayload(orderID=order_id)))
        return answer if isinstance(answer, dict) else {}

    def cancel_all(self) -> list[str]:
        answer = self.authed(self.client.cancel_all)
        canceled = answer.get("canceled") if isinstance(answer, dict) else None
        return [str(c) for c in canceled] if isinstance(canceled, list) else []

    def server_time(self) -> Any:
        try:
            return self.client.get_server_time()
        except Exception as exc:
            raise VenueError(f"CLOB at {self.client.host} unreachable: {describe(exc)}") from None


def _collateral(answer: Any) -> Collateral:
    if not isinstance(answer, dict):
        raise VenueError("unreadable balance/allowance answer")
    allowances = answer.get("allowances")
    if isinstance(allowances, dict):
        parsed = {str(k): _usd(v) for k, v in allowances.items()}
    else:  # older single-allowance answers
        parsed = {ANY_SPENDER: _usd(answer.get("allowance"))}
    return Collateral(balance=_usd(answer.get("balance")), allowances=parsed)

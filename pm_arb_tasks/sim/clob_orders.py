"""The simulator's CLOB account side: API-key auth, signed orders, trades, balances.

It answers py-clob-client-v2 the way Polymarket's CLOB does, from the venue's side of the wire:
L1 (EIP-712 `ClobAuth`) and L2 (HMAC) authentication, V2 orders whose EIP-712 signature must
recover to the API key's address and whose hash becomes the order id, FOK/FAK matching against
the scenario's book, replies without `transactionsHashes`, and trades that move from MATCHED to
CONFIRMED after `settlement_delay_seconds`. Matched FOK/FAK orders are not listed by
`GET /data/order/<id>` (as on the real venue); their trades are.

Knobs (scenario.settings; registered there, so `POST /sim/settings` sets them from another process),
so tests can drive every venue error:
  clob_post_faults: list consumed one per `POST /order`: "401", "429", "500" (nothing placed),
    "500_after" (placed, then 500), "timeout" (placed, reply after clob_timeout_seconds),
    "delayed" (placed as delayed, matched after clob_delayed_seconds), "balance" (400 not enough balance),
    "hold_drop" (held before the venue looks at it, then dropped with nothing placed: 503),
    "hold_reply" (placed, its reply held); a held post is logged as `clob_hold` and waits until
    `POST /sim/release` (or clob_hold_seconds), so a test can kill the client at exactly that point
  clob_reply_delay_seconds: every accepted post is processed, then answered this much later
  clob_balance_delay_seconds: balance reads answer this much later (the executor's pre-sign check)
  clob_fail_settlement: the next N trades fail on chain instead of confirming
  balance / clob_allowance: starting pUSD balance and allowance of a new account (USD)
  clob_balances: {address: USD} overrides of collateral balances
  clob_hold_seconds: the longest a held post waits for its release (a failed test never hangs it)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from flask import Flask, Response, request

from pm_arb_tasks.sim.common import reply as respond

MICRO = Decimal(10) ** 6
SHARE_STEP = Decimal("0.000001")
CENT = Decimal("0.01")
END_CURSOR = "LTE="
PAGE = 100
ZERO_BYTES32 = "0x" + "00" * 32
# Polymarket's V2 contracts (Polygon and Amoy use the same V2 exchange addresses).
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
NEG_RISK_ADAPTER = "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296"
KNOBS: dict[str, Any] = {
    "clob_post_faults": [],
    "clob_reply_delay_seconds": 0.0,
    "clob_balance_delay_seconds": 0.0,
    "clob_timeout_seconds": 6.0,
    "clob_delayed_seconds": 1.0,
    "clob_fail_settlement": 0,
    "clob_allowance": 10**9,
    "clob_balances": {},
    "clob_hold_seconds": 30.0,
}
AMOUNT_DECIMALS = {"0.1": 3, "0.01": 4, "0.005": 5, "0.0025": 6, "0.001": 5, "0.0001": 6}
ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
FOK_NOT_FILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."
FAK_NO_MATCH = (
    "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
)


class ClobError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ApiKey:
    key: str
    secret: str
    passphrase: str
    address: str  # checksummed signer address


@dataclass
class SimOrder:
    order_id: str
    owner: str  # API key
    signer: str
    maker: str
    token_id: str
    market: str
    outcome: str
    maker_amount: Decimal  # USD
    taker_amount: Decimal  # shares
    price: Decimal
    order_type: str
    status: str  # LIVE | DELAYED | MATCHED | CANCELED | UNMATCHED
    created_at: float
    due_at: float = 0.0
    size_matched: Decimal = Decimal(0)
    trade_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.order_id, "status": self.status, "owner": self.owner, "maker_address": self.maker,
            "market": self.market, "asset_id": self.token_id, "side": "BUY",
            "original_size": _s(self.taker_amount), "size_matched": _s(self.size_matched), "price": _s(self.price),
            "outcome": self.outcome, "created_at": int(self.created_at), "expiration": "0",
            "order_type": self.order_type, "associate_trades": list(self.trade_ids),
        }


@dataclass
class SimTrade:
    trade_id: str
    order: SimOrder
    legs: list[tuple[Decimal, Decimal]]  # (price, shares)
    fee_rate_bps: int
    match_time: float
    fails: bool = False

    @property
    def transaction_hash(self) -> str:
        return "0x" + hashlib.sha256(self.trade_id.encode()).hexdigest()

    def status(self, now: float, delay: float) -> str:
        if now - self.match_time < delay:
            return "MATCHED"
        return "FAILED" if self.fails else "CONFIRMED"

    def as_json(self, now: float, delay: float) -> dict[str, Any]:
        status = self.status(now, delay)
        shares = sum((s for _, s in self.legs), Decimal(0))
        return {
            "id": self.trade_id, "taker_order_id": self.order.order_id, "market": self.order.market,
            "asset_id": self.order.token_id, "side": "BUY", "size": _s(shares), "fee_rate_bps": str(self.fee_rate_bps),
            "price": _s(self.order.price), "status": status, "match_time": str(int(self.match_time)),
            "last_update": str(int(max(self.match_time, now if status != "MATCHED" else self.match_time))),
            "outcome": self.order.outcome, "bucket_index": 0, "owner": self.order.owner,
            "maker_address": self.order.maker, "trader_side": "TAKER",
            "transaction_hash": self.transaction_hash if status == "CONFIRMED" else "",
            "maker_orders": [
                {
                    "order_id": "0x" + hashlib.sha256(f"{self.trade_id}-{i}".encode()).hexdigest(),
                    "owner": "sim-liquidity", "maker_address": "0x" + "5" * 40, "matched_amount": _s(size),
                    "price": _s(price), "fee_rate_bps": "0", "asset_id": self.order.token_id,
                    "outcome": self.order.outcome, "side": "SELL",
                }
                for i, (price, size) in enumerate(self.legs)
            ],
        }


def _s(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _dec(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def order_typed_data(order: dict[str, Any], chain_id: int, exchange: str) -> dict[str, Any]:
    """A posted V2 order as the exchange contract's EIP-712 struct."""
    return {
        "primaryType": "Order",
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Order": ORDER_FIELDS},
        "domain": {
            "name": "Polymarket CTF Exchange", "version": "2", "chainId": chain_id, "verifyingContract": exchange,
        },
        "message": {
            "salt": int(order["salt"]), "maker": order["maker"], "signer": order["signer"],
            "tokenId": int(order["tokenId"]), "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]), "side": 0 if order["side"] == "BUY" else 1,
            "signatureType": int(order["signatureType"]), "timestamp": int(order["timestamp"]),
            "metadata": bytes.fromhex(str(order.get("metadata") or ZERO_BYTES32)[2:].zfill(64)),
            "builder": bytes.fromhex(str(order.get("builder") or ZERO_BYTES32)[2:].zfill(64)),
        },
    }


def order_id_and_signer(order: dict[str, Any], chain_id: int, exchange: str) -> tuple[str, str]:
    """The order id (hex EIP-712 digest) and the address its signature recovers to ("" if none)."""
    signable = encode_typed_data(full_message=order_typed_data(order, chain_id, exchange))
    order_id = "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()
    try:
        signer = Account.recover_message(signable, signature=str(order.get("signature", "")))
    except Exception:
        signer = ""
    return order_id, signer


def clob_auth_signer(address: str, timestamp: str, nonce: int, signature: str, chain_id: int) -> str:
    typed = {
        "primaryType": "ClobAuth",
        "types": {
            "EIP712Domain": DOMAIN_FIELDS[:3],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {
            "address": address, "timestamp": timestamp, "nonce": nonce,
            "message": "This message attests that I control the given wallet",
        },
    }
    return Account.recover_message(encode_typed_data(full_message=typed), signature=signature)


class ClobSim:
    """State and rules of the simulated CLOB account side; every mutation under `self.lock`."""

    def __init__(self, scenario: Any) -> None:
        self.scenario = scenario
        self.lock = scenario.lock  # one RLock for the book and the accounts: a match is atomic
        self.keys: dict[str, ApiKey] = {}
        self.keys_by_owner: dict[tuple[str, int], ApiKey] = {}
        self.orders: dict[str, SimOrder] = {}
        self.trades: list[SimTrade] = []
        self.collateral: dict[str, Decimal] = {}
        self.tokens: dict[tuple[str, str], Decimal] = {}
        self.holds = threading.Condition()  # its own lock: a held post must not block the venue
        self.releases = 0

    # ---- knobs ---------------------------------------------------------------------------

    def setting(self, name: str, default: Any) -> Any:
        return self.scenario.settings.get(name, default)

    @property
    def chain_id(self) -> int:
        return int(self.setting("chain_id", 137))

    @property
    def settlement_delay(self) -> float:
        return float(self.setting("settlement_delay_seconds", 2.0))

    def next_fault(self) -> str | None:
        with self.lock:
            faults = self.scenario.settings.get("clob_post_faults") or []
            if not faults:
                return None
            fault = str(faults[0])
            self.scenario.settings["clob_post_faults"] = list(faults[1:])
            return fault

    def hold(self, stage: str) -> None:
        """Keep this post waiting until the next `release()`; logged first, under the same lock,
        so a release sent after a test saw the `clob_hold` entry always frees this very post."""
        with self.holds:
            generation = self.releases
            self.scenario.record("clob_hold", {"stage": stage})
            self.holds.wait_for(
                lambda: self.releases > generation, timeout=float(self.setting("clob_hold_seconds", 30.0))
            )

    def release(self) -> int:
        """Free every post held now; returns the number of releases so far."""
        with self.holds:
            self.releases += 1
            self.holds.notify_all()
            return self.releases

    # ---- auth ----------------------------------------------------------------------------

    def l1(self, headers: Any) -> tuple[str, int]:
        address = headers.get("POLY_ADDRESS", "")
        try:
            nonce = int(headers.get("POLY_NONCE", "0"))
            signer = clob_auth_signer(
                address, headers.get("POLY_TIMESTAMP", ""), nonce, headers.get("POLY_SIGNATURE", ""), self.chain_id
            )
        except Exception:
            raise ClobError(401, "Invalid L1 Request headers") from None
        if signer.lower() != address.lower():
            raise ClobError(401, "Invalid L1 Request headers")
        return signer, nonce

    def create_key(self, headers: Any) -> ApiKey:
        address, nonce = self.l1(headers)
        with self.lock:
            if (address.lower(), nonce) in self.keys_by_owner:
                raise ClobError(400, "Could not create api key")
            key = ApiKey(
                key=str(uuid.uuid4()), secret=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                passphrase=secrets.token_hex(32), address=address,
            )
            self.keys[key.key] = key
            self.keys_by_owner[(address.lower(), nonce)] = key
            return key

    def derive_key(self, headers: Any) -> ApiKey:
        address, nonce = self.l1(headers)
        with self.lock:
            key = self.keys_by_owner.get((address.lower(), nonce))
        if key is None:
            raise ClobError(400, "Could not derive api key!")
        return key

    def l2(self, headers: Any, method: str, path: str, body: str) -> ApiKey:
        key = self.keys.get(headers.get("POLY_API_KEY", ""))
        if key is None or not hmac.compare_digest(headers.get("POLY_PASSPHRASE", ""), key.passphrase):
            raise ClobError(401, "Unauthorized/Invalid api key")
        if headers.get("POLY_ADDRESS", "").lower() != key.address.lower():
            raise ClobError(401, "Unauthorized/Invalid api key")
        message = headers.get("POLY_TIMESTAMP", "") + method + path + (body.replace("'", '"') if body else "")
        digest = hmac.new(base64.urlsafe_b64decode(key.secret), message.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.urlsafe_b64encode(digest).decode(), headers.get("POLY_SIGNATURE", "")):
            raise ClobError(401, "Unauthorized/Invalid api key")
        return key

    # ---- market data from the scenario -----------------------------------------------------

    def market(self, token_id: str) -> tuple[Any, int]:
        """The scenario's market holding `token_id` and the token's outcome index."""
        found = self.scenario.sim_market_for_token(token_id)
        if found is None:
            raise ClobError(400, f"invalid token id {token_id[:20]}")
        return found

    def asks(self, token_id: str) -> list[tuple[Decimal, Decimal]]:
        levels = []
        for level in self.scenario.book(token_id).get("asks") or ():
            price, size = _dec(level.get("price")), _dec(level.get("size"))
            if price is not None and size is not None and size > 0:
                levels.append((price, size))
        return sorted(levels)

    def fee(self, token_id: str, legs: list[tuple[Decimal, Decimal]]) -> Decimal:
        """Taker fee in pUSD: rate * (p * (1 - p)) ** exponent per share, from the market's schedule."""
        schedule = self.market(token_id)[0].fee_schedule
        if not schedule:
            return Decimal(0)
        rate, exponent = float(schedule.get("rate", 0)), float(schedule.get("exponent", 1))
        return sum(
            (size * Decimal(repr(rate * float(price * (1 - price)) ** exponent)) for price, size in legs), Decimal(0)
        )

    # ---- balances --------------------------------------------------------------------------

    def balance(self, address: str) -> Decimal:
        address = address.lower()
        overrides = self.setting("clob_balances", {}) or {}
        if address in {a.lower() for a in overrides}:
            value = next(v for a, v in overrides.items() if a.lower() == address)
            self.collateral[address] = Decimal(str(value))
            overrides = {a: v for a, v in overrides.items() if a.lower() != address}
            self.scenario.settings["clob_balances"] = overrides
        if address not in self.collateral:
            self.collateral[address] = Decimal(str(self.setting("balance", 1000)))
        return self.collateral[address]

    def allowance(self) -> Decimal:
        return Decimal(str(self.setting("clob_allowance", 10**9)))

    # ---- orders ----------------------------------------------------------------------------

    def validate(self, key: ApiKey, payload: Any) -> tuple[SimOrder, dict[str, Any]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("order"), dict):
            raise ClobError(400, "Invalid order payload")
        order = payload["order"]
        if payload.get("owner") != key.key:
            raise ClobError(400, "the order owner has to be the owner of the API KEY")
        order_type = str(payload.get("orderType", "GTC"))
        if order_type not in ("FOK", "FAK", "GTC", "GTD"):
            raise ClobError(400, f"invalid order type {order_type}")
        try:
            token_id = str(order["tokenId"])
            maker_amount = Decimal(int(order["makerAmount"])) / MICRO
            taker_amount = Decimal(int(order["takerAmount"])) / MICRO
            signature_type = int(order["signatureType"])
        except (KeyError, TypeError, ValueError):
            raise ClobError(400, "Invalid order payload") from None
        if order.get("side") != "BUY":
            raise ClobError(400, "the simulator only takes BUY orders")
        if maker_amount <= 0 or taker_amount <= 0:
            raise ClobError(400, "invalid amounts")
        market, index = self.market(token_id)
        if market.closed:
            raise ClobError(400, "the market is not accepting orders")
        tick, min_size, neg_risk = market.tick, market.min_size, market.neg_risk
        exchange = NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2
        try:
            order_id, recovered = order_id_and_signer(order, self.chain_id, exchange)
        except Exception:
            raise ClobError(400, "Invalid order payload") from None
        if order_id in self.orders:
            raise ClobError(400, f"order {order_id} is invalid. Duplicated.")
        if str(order.get("signer", "")).lower() != key.address.lower():
            raise ClobError(400, "the order signer address has to be the address of the API KEY")
        if signature_type == 0 and str(order.get("maker", "")).lower() != key.address.lower():
            raise ClobError(400, "invalid signature: EOA orders are made by their signer")
        if signature_type not in (0, 1, 2):
            raise ClobError(400, f"signature type {signature_type} is not supported by the simulator")
        if recovered.lower() != key.address.lower():
            raise ClobError(400, "invalid signature")
        price = maker_amount / taker_amount
        nearest = (price / tick).to_integral_value() * tick
        if nearest <= 0 or nearest >= 1 or abs(price - nearest) > tick / 100:
            raise ClobError(400, f"invalid price ({price:.6f}), breaks the minimum tick size rule: {tick}")
        if order_type in ("FOK", "FAK"):
            decimals = AMOUNT_DECIMALS.get(format(tick.normalize(), "f"), 4)
            if maker_amount != maker_amount.quantize(CENT) or taker_amount != taker_amount.quantize(
                Decimal(1).scaleb(-decimals)
            ):
                raise ClobError(
                    400,
                    "invalid amounts, the market buy orders maker amount supports a max accuracy of 2 decimals, "
                    f"taker amount a max of {decimals} decimals",
                )
        if taker_amount < min_size:
            raise ClobError(400, f"Size ({_s(taker_amount)}) lower than the minimum: {_s(min_size)}")
        sim_order = SimOrder(
            order_id=order_id, owner=key.key, signer=key.address, maker=str(order.get("maker")), token_id=token_id,
            market=market.condition_id, outcome=market.outcomes[index],
            maker_amount=maker_amount, taker_amount=taker_amount, price=nearest, order_type=order_type,
            status="LIVE", created_at=time.time(),
        )
        return sim_order, order

    def place(self, key: ApiKey, payload: Any, fault: str | None) -> dict[str, Any]:
        with self.lock:
            self.process_due()
            order, _ = self.validate(key, payload)
            needed = order.maker_amount + self.fee(order.token_id, [(order.price, order.taker_amount)])
            if fault == "balance" or self.balance(key.address) < needed or self.allowance() < needed:
                raise ClobError(400, "not enough balance / allowance")
            self.orders[order.order_id] = order
            if fault == "delayed":
                order.status = "DELAYED"
                order.due_at = time.time() + float(self.setting("clob_delayed_seconds", 1.0))
                reply = self.reply(order, "delayed")
            else:
                reply = self.match(order)
        self.scenario.record(
            "clob_order",
            {"order_id": order.order_id, "token_id": order.token_id, "order_type": order.order_type,
             "status": order.status, "making": _s(order.maker_amount), "fault": fault or ""},
        )
        return reply

    def match(self, order: SimOrder) -> dict[str, Any]:
        """Walk the asks up to the order's price spending its USD; FOK all or nothing, FAK what is there."""
        remaining, plan = order.maker_amount, []
        for price, size in self.asks(order.token_id):
            if price > order.price or remaining < price * SHARE_STEP:
                break
            shares = min(size, (remaining / price).quantize(SHARE_STEP, rounding=ROUND_DOWN))
            if shares > 0:
                plan.append((price, shares))
                remaining -= price * shares
        complete = remaining < CENT
        total = sum((s for _, s in plan), Decimal(0))
        if not plan or (order.order_type == "FOK" and not complete):
            del self.orders[order.order_id]
            raise ClobError(400, FOK_NOT_FILLED if order.order_type == "FOK" else FAK_NO_MATCH)
        taken = self.scenario.take(order.token_id, "BUY", order.price, total)
        legs = [(Decimal(str(p)), Decimal(str(s))) for p, s in taken]
        shares = sum((s for _, s in legs), Decimal(0))
        cost = sum((p * s for p, s in legs), Decimal(0))
        fee = self.fee(order.token_id, legs)
        schedule = self.market(order.token_id)[0].fee_schedule or {}
        failing = int(self.setting("clob_fail_settlement", 0))
        if failing:
            self.scenario.settings["clob_fail_settlement"] = failing - 1
        trade = SimTrade(
            trade_id=str(uuid.uuid4()), order=order, legs=legs,
            fee_rate_bps=int(float(schedule.get("rate", 0)) * 10000), match_time=time.time(), fails=bool(failing),
        )
        self.trades.append(trade)
        address = order.signer.lower()
        self.collateral[address] = self.balance(address) - cost - fee
        self.tokens[(address, order.token_id)] = self.tokens.get((address, order.token_id), Decimal(0)) + shares
        order.status, order.size_matched = "MATCHED", shares
        order.trade_ids.append(trade.trade_id)
        return self.reply(order, "matched", making=cost, taking=shares)

    def reply(self, order: SimOrder, status: str, making: Decimal = Decimal(0), taking: Decimal = Decimal(0)) -> dict:
        return {
            "success": True, "errorMsg": "", "orderID": order.order_id, "status": status,
            "makingAmount": _s(making.quantize(SHARE_STEP)) if making else "",
            "takingAmount": _s(taking.quantize(SHARE_STEP)) if taking else "",
            "tradeIDs": list(order.trade_ids),
        }

    def process_due(self) -> None:
        """Delayed orders match (or die) once their delay is over."""
        now = time.time()
        for order in list(self.orders.values()):
            if order.status == "DELAYED" and order.due_at <= now:
                try:
                    self.match(order)
                except ClobError:
                    order.status = "UNMATCHED"
                    self.orders[order.order_id] = order

    def visible_order(self, key: ApiKey, order_id: str) -> dict[str, Any] | None:
        with self.lock:
            self.process_due()
            order = self.orders.get(order_id)
            if order is None or order.owner != key.key or order.status not in ("LIVE", "DELAYED"):
                return None
            return order.as_json()

    def open_orders(self, key: ApiKey, args: Any) -> list[dict[str, Any]]:
        with self.lock:
            self.process_due()
            return [
                o.as_json()
                for o in self.orders.values()
                if o.owner == key.key and o.status in ("LIVE", "DELAYED")
                and args.get("id", o.order_id) == o.order_id
                and args.get("asset_id", o.token_id) == o.token_id
                and args.get("market", o.market) == o.market
            ]

    def cancel(self, key: ApiKey, order_ids: list[str]) -> dict[str, Any]:
        canceled, not_canceled = [], {}
        with self.lock:
            self.process_due()
            for order_id in order_ids:
                order = self.orders.get(order_id)
                if order is None or order.owner != key.key or order.status not in ("LIVE", "DELAYED"):
                    not_canceled[order_id] = "order can't be found - already canceled or matched"
                    continue
                order.status = "CANCELED"
                canceled.append(order_id)
        return {"canceled": canceled, "not_canceled": not_canceled}

    def trade_list(self, key: ApiKey, args: Any) -> list[dict[str, Any]]:
        now, delay = time.time(), self.settlement_delay
        after, before = _dec(args.get("after")), _dec(args.get("before"))
        with self.lock:
            self.process_due()
            rows = []
            for trade in self.trades:
                order = trade.order
                if order.signer.lower() != key.address.lower():
                    continue
                if args.get("id") and args["id"] != trade.trade_id:
                    continue
                if args.get("asset_id") and args["asset_id"] != order.token_id:
                    continue
                if args.get("market") and args["market"] != order.market:
                    continue
                if args.get("maker_address") and args["maker_address"].lower() != order.maker.lower():
                    continue
                if after is not None and trade.match_time < after:
                    continue
                if before is not None and trade.match_time > before:
                    continue
                rows.append(trade.as_json(now, delay))
            return rows

    def token_balance(self, key: ApiKey, token_id: str) -> Decimal:
        with self.lock:
            delay, now = self.settlement_delay, time.time()
            # Shares bought in trades that then failed on chain never arrive.
            mine = [
                t for t in self.trades
                if t.order.token_id == token_id and t.order.signer.lower() == key.address.lower()
            ]
            lost = sum((s for t in mine if t.status(now, delay) == "FAILED" for _, s in t.legs), Decimal(0))
            return self.tokens.get((key.address.lower(), token_id), Decimal(0)) - lost


def _page(rows: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    try:
        start = int(base64.b64decode(cursor or "MA==").decode() or 0)
    except ValueError:
        start = 0
    start = max(start, 0)
    chunk = rows[start : start + PAGE]
    nxt = start + PAGE
    return {
        "data": chunk, "limit": PAGE, "count": len(chunk),
        "next_cursor": base64.b64encode(str(nxt).encode()).decode() if nxt < len(rows) else END_CURSOR,
    }


def register(app: Flask, scenario: Any) -> ClobSim:
    """Add the CLOB auth and order endpoints to the simulator's Flask app."""
    sim = ClobSim(scenario)
    with scenario.lock:  # known settings, so `/sim/settings` accepts the knobs
        for name, value in KNOBS.items():
            scenario.settings.setdefault(name, value)

    def guarded(handler: Any) -> Any:
        def view(*args: Any, **kwargs: Any) -> Response:
            try:
                return handler(*args, **kwargs)
            except ClobError as exc:
                return respond({"error": str(exc)}, exc.status)

        view.__name__ = f"clob_{handler.__name__}"
        return view

    def route(rule: str, methods: list[str]) -> Any:
        def decorate(handler: Any) -> Any:
            endpoint = f"clob_orders.{handler.__name__}"
            app.add_url_rule(rule, endpoint=endpoint, view_func=guarded(handler), methods=methods)
            return handler

        return decorate

    def authed() -> ApiKey:
        return sim.l2(request.headers, request.method, request.path, request.get_data(as_text=True))

    @route("/auth/api-key", ["POST"])
    def create_api_key() -> Response:
        key = sim.create_key(request.headers)
        return respond({"apiKey": key.key, "secret": key.secret, "passphrase": key.passphrase})

    @route("/auth/derive-api-key", ["GET"])
    def derive_api_key() -> Response:
        key = sim.derive_key(request.headers)
        return respond({"apiKey": key.key, "secret": key.secret, "passphrase": key.passphrase})

    @route("/auth/api-keys", ["GET"])
    def api_keys() -> Response:
        key = authed()
        return respond({"apiKeys": [k.key for k in sim.keys.values() if k.address == key.address]})

    @route("/order", ["POST"])
    def post_order() -> Response:
        fault = sim.next_fault()
        scenario.record("clob_post", {"fault": fault or ""})
        if fault == "401":
            return respond({"error": "Unauthorized/Invalid api key"}, 401)
        if fault == "hold_drop":
            sim.hold("before_accept")
            return respond({"error": "dropped by the simulator before the order was looked at"}, 503)
        key = authed()
        if fault == "429":
            return respond({"error": "Too Many Requests"}, 429)
        if fault == "500":
            return respond({"error": "could not run the execution"}, 500)
        try:
            payload = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            raise ClobError(400, "Invalid order payload") from None
        reply = sim.place(key, payload, fault)
        if fault == "hold_reply":
            sim.hold("after_accept")
        delay = float(sim.setting("clob_reply_delay_seconds", 0) or 0)
        if fault == "timeout":
            delay = max(delay, float(sim.setting("clob_timeout_seconds", 6.0)))
        if delay > 0:
            time.sleep(delay)
        if fault == "500_after":
            return respond({"error": "could not run the execution"}, 500)
        return respond(reply)

    @route("/sim/release", ["POST"])
    def release_holds() -> Response:
        return respond({"releases": sim.release()})

    @route("/order", ["DELETE"])
    def cancel_order() -> Response:
        key = authed()
        body = request.get_json(silent=True) or {}
        return respond(sim.cancel(key, [str(body.get("orderID", ""))]))

    @route("/orders", ["DELETE"])
    def cancel_orders() -> Response:
        key = authed()
        body = request.get_json(silent=True) or []
        return respond(sim.cancel(key, [str(i) for i in body] if isinstance(body, list) else []))

    @route("/cancel-all", ["DELETE"])
    def cancel_all() -> Response:
        key = authed()
        with sim.lock:
            ids = [o.order_id for o in sim.orders.values() if o.owner == key.key]
        return respond(sim.cancel(key, ids))

    @route("/data/order/<order_id>", ["GET"])
    def get_order(order_id: str) -> Response:
        return respond(sim.visible_order(authed(), order_id))

    @route("/data/orders", ["GET"])
    def get_orders() -> Response:
        return respond(_page(sim.open_orders(authed(), request.args), request.args.get("next_cursor")))

    @route("/data/trades", ["GET"])
    def get_trades() -> Response:
        return respond(_page(sim.trade_list(authed(), request.args), request.args.get("next_cursor")))

    @route("/balance-allowance", ["GET"])
    def balance_allowance() -> Response:
        key = authed()
        delay = float(sim.setting("clob_balance_delay_seconds", 0) or 0)
        if delay > 0:  # the executor's last venue call before it signs: a window to kill it pre-post
            time.sleep(delay)
        if request.args.get("asset_type") == "CONDITIONAL":
            balance = sim.token_balance(key, request.args.get("token_id", ""))
        else:
            with sim.lock:
                balance = sim.balance(key.address)
        allowance = str(int(sim.allowance() * MICRO))
        return respond({
            "balance": str(int(balance * MICRO)),
            "allowances": {EXCHANGE_V2: allowance, NEG_RISK_EXCHANGE_V2: allowance, NEG_RISK_ADAPTER: allowance},
        })

    @route("/balance-allowance/update", ["GET"])
    def update_balance_allowance() -> Response:
        authed()
        return respond({})

    return sim

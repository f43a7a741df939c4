"""Signing with the real py-clob-client-v2 builder, offline: the signed order carries exactly the
price and USD amount asked for (the SDK's float flooring would otherwise drop 0.29, 0.57 and 0.58
by a tick), and its hash is the venue's EIP-712 order id."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from eth_account import Account
from pydantic import SecretStr

from pm_arb_tasks.adapters.polymarket.live_client import ClobSession
from pm_arb_tasks.adapters.polymarket.order_mapping import MarketRules
from pm_arb_tasks.settings import Settings
from pm_arb_tasks.sim.clob_orders import EXCHANGE_V2, NEG_RISK_EXCHANGE_V2, order_id_and_signer

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


@pytest.fixture(scope="module")
def session() -> ClobSession:
    key = "0x" + bytes(Account.create().key).hex()
    settings = Settings(_env_file=None, polymarket_private_key=SecretStr(key), clob_api_url="http://127.0.0.1:9")
    session = ClobSession(settings)
    session.order_version = lambda: 2  # type: ignore[method-assign] - no network in a unit test
    return session


@pytest.mark.parametrize("cents", range(1, 100))
def test_signed_price_is_the_limit_for_every_tick(session: ClobSession, cents: int) -> None:
    price, spend = D(cents) / 100, D("4.35")
    order, _ = session.sign_buy(TOKEN, spend, price, "FOK", MarketRules(D("0.01"), D(0), False))
    maker, taker = D(order.makerAmount) / 10**6, D(order.takerAmount) / 10**6
    assert maker == spend
    assert abs(maker / taker - price) < D("0.0001")


@pytest.mark.parametrize(("neg_risk", "exchange"), [(False, EXCHANGE_V2), (True, NEG_RISK_EXCHANGE_V2)])
def test_order_hash_is_the_venues_id(session: ClobSession, neg_risk: bool, exchange: str) -> None:
    order, order_hash = session.sign_buy(TOKEN, D(5), D("0.57"), "FAK", MarketRules(D("0.01"), D(5), neg_risk))
    from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2

    posted = order_to_json_v2(order, "owner", "FAK")["order"]
    venue_id, signer = order_id_and_signer(posted, 137, exchange)
    assert order_hash == venue_id and signer == session.address

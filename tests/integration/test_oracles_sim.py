"""Oracle adapters and the oracle poll against the running simulator over real HTTP:
real shapes, each bad value, outages with fallback, recovery, 429 backoff, and a scripted jump
showing up in the stored ticks within two polls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from pm_arb_tasks.adapters.http import make_session
from pm_arb_tasks.adapters.oracles.binance import BinanceOracle
from pm_arb_tasks.adapters.oracles.coinbase import CoinbaseOracle
from pm_arb_tasks.adapters.oracles.coingecko import CoinGeckoOracle
from pm_arb_tasks.adapters.oracles.fallback import OracleFallback
from pm_arb_tasks.domain.models import Tick
from pm_arb_tasks.services import marketdata
from pm_arb_tasks.sim import SimServer, running_sim
from pm_arb_tasks.state.market_data import (
    RedisHealthStore,
    last_poll,
    latest_tick,
    price_at,
    save_ticks,
    tick_history,
    tick_is_stale,
)
from tests.support.marketdata import clear_faults, control, fault, marketdata_env

pytestmark = pytest.mark.integration
SYMBOLS = ["BTC", "ETH", "SOL", "XRP"]
BAD_VALUES: list[Any] = [None, "", "NaN", "Infinity", "-Infinity", "0", "-1", 0, -2.5, True, [], {}, "abc", "1e999"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with running_sim(seed=21) as server:
        yield server


@pytest.fixture(autouse=True)
def env(sim: SimServer) -> Iterator[None]:
    with marketdata_env("oracles", sim.url):
        clear_faults(sim.url)
        yield
        clear_faults(sim.url)


def providers(url: str) -> list[Any]:
    session = make_session(retries=0)
    return [BinanceOracle(url, session), CoinbaseOracle(url, session), CoinGeckoOracle(url, session)]


def now() -> datetime:
    return datetime.now(UTC)


def test_every_provider_prices_every_symbol_in_bare_symbols(sim: SimServer) -> None:
    spots = sim.scenario.spots()
    for provider in providers(sim.url):
        ticks = provider.fetch(SYMBOLS, now())
        assert sorted(t.symbol for t in ticks) == SYMBOLS, provider.name
        for tick in ticks:
            assert tick.provider == provider.name
            assert abs(tick.price / spots[tick.symbol] - 1) < D("0.001")


@pytest.mark.parametrize(
    ("provider", "calls"), [(BinanceOracle, 1), (CoinbaseOracle, len(SYMBOLS)), (CoinGeckoOracle, 1)]
)
def test_one_batched_request_per_poll_on_one_keep_alive_connection(sim: SimServer, provider: Any, calls: int) -> None:
    """Binance and CoinGecko price every symbol in one request, Coinbase one per symbol; all of a
    poll's requests reuse one connection (a TLS handshake per symbol would cost more than the poll)."""
    session = make_session(retries=0)
    paths: list[str] = []
    session.hooks["response"].append(lambda reply, *_, **__: paths.append(reply.request.path_url))
    assert len(provider(sim.url, session).fetch(SYMBOLS, now())) == len(SYMBOLS)
    assert len(paths) == calls, paths
    pools = session.get_adapter(sim.url).poolmanager.pools
    keys = pools.keys()  # urllib3's container refuses plain iteration
    assert [pools[key].num_connections for key in keys] == [1]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("service", ["binance", "coinbase", "coingecko"])
def test_each_bad_value_is_dropped_and_the_next_provider_serves(sim: SimServer, service: str, bad: Any) -> None:
    fault(sim.url, service, mode="value", value=bad, times=-1)
    chain = providers(sim.url)
    faulty = next(p for p in chain if p.name == service)
    assert faulty.fetch(SYMBOLS, now()) == []
    ticks = OracleFallback(chain).fetch(SYMBOLS, now())
    assert sorted(t.symbol for t in ticks) == SYMBOLS
    assert service not in {t.provider for t in ticks}


@pytest.mark.parametrize(
    ("service", "spec"),
    [
        ("binance", {"mode": "truncated"}),
        ("binance", {"mode": "html"}),
        ("binance", {"mode": "raw", "body": '[{"symbol": "BTCUSDT", "price": NaN}]'}),
        ("binance", {"mode": "raw", "body": '{"code": -1121, "msg": "Invalid symbol."}'}),
        ("coinbase", {"mode": "truncated"}),
        ("coinbase", {"mode": "garbage"}),
        ("coingecko", {"mode": "raw", "body": '{"bitcoin": {"usd": 1e999}, "ethereum": {"usd": Infinity}}'}),
        ("coingecko", {"mode": "garbage"}),
        ("coingecko", {"mode": "truncated"}),
    ],
)
def test_garbage_payloads_never_raise_and_fall_back(sim: SimServer, service: str, spec: dict[str, Any]) -> None:
    fault(sim.url, service, times=-1, **spec)
    ticks = OracleFallback(providers(sim.url)).fetch(SYMBOLS, now())
    assert sorted(t.symbol for t in ticks) == SYMBOLS and service not in {t.provider for t in ticks}


def test_outage_falls_back_marks_unhealthy_and_recovers(sim: SimServer) -> None:
    fault(sim.url, "binance", status=503, times=-1)
    chain = OracleFallback(providers(sim.url), RedisHealthStore())
    start = now()
    for second in range(3):
        ticks = chain.fetch(SYMBOLS, start + timedelta(seconds=second))
        assert {t.provider for t in ticks} == {"coinbase"}
    health = RedisHealthStore().load(["binance"])["binance"]
    assert health.failures == 3 and not health.available(start + timedelta(seconds=10))
    assert "503" in health.last_error

    fault(sim.url, "binance", status=503, times=5)  # would fail again if it were tried
    chain.fetch(SYMBOLS, start + timedelta(seconds=10))
    assert control(sim.url, "state", method="GET")["faults"]["binance"]["times"] == 5  # skipped, not called

    clear_faults(sim.url)
    ticks = chain.fetch(SYMBOLS, start + timedelta(seconds=40))
    assert {t.provider for t in ticks} == {"binance"}
    assert RedisHealthStore().load(["binance"])["binance"].clean


def test_rate_limit_backs_off_for_retry_after(sim: SimServer) -> None:
    fault(sim.url, "binance", status=429, retry_after=20, times=1)
    chain = OracleFallback(providers(sim.url), RedisHealthStore())
    start = now()
    assert {t.provider for t in chain.fetch(SYMBOLS, start)} == {"coinbase"}
    health = RedisHealthStore().load(["binance"])["binance"]
    assert health.rate_limits == 1 and health.unhealthy_until is not None
    assert abs((health.unhealthy_until - start).total_seconds() - 20) < 0.001
    assert {t.provider for t in chain.fetch(SYMBOLS, start + timedelta(seconds=19))} == {"coinbase"}
    assert {t.provider for t in chain.fetch(SYMBOLS, start + timedelta(seconds=21))} == {"binance"}


def test_coinbase_rate_limit_stops_the_round(sim: SimServer) -> None:
    fault(sim.url, "binance", status=451, times=-1)
    fault(sim.url, "coinbase", status=429, times=1)
    chain = OracleFallback(providers(sim.url), RedisHealthStore())
    ticks = chain.fetch(SYMBOLS, now())
    assert {t.provider for t in ticks} == {"coingecko"}
    states = RedisHealthStore().load(["binance", "coinbase"])
    assert states["binance"].unhealthy_until is not None and states["coinbase"].rate_limits == 1


def test_all_providers_down_stores_nothing_and_never_raises(sim: SimServer) -> None:
    for service in ("binance", "coinbase", "coingecko"):
        fault(sim.url, service, status=500, times=-1)
    assert marketdata.poll_oracles(now()) == []
    assert latest_tick("BTC") is None and last_poll("oracle") is None


def test_poll_stores_latest_and_history_and_reports_moves(sim: SimServer) -> None:
    first = now()
    assert sorted(marketdata.poll_oracles(first)) == SYMBOLS
    tick = latest_tick("BTC")
    assert tick is not None and tick.provider == "binance" and tick.observed_at == first
    assert not tick_is_stale(tick, first + timedelta(seconds=3))
    assert tick_is_stale(tick, first + timedelta(seconds=3.5))  # three 1 s poll periods
    marketdata.poll_oracles(first + timedelta(seconds=1))
    control(sim.url, "spot", symbol="ETH", price="4000")
    assert "ETH" in marketdata.poll_oracles(first + timedelta(seconds=2))
    assert len(tick_history("ETH", first)) == 3
    assert price_at("ETH", first + timedelta(seconds=2.4)).price == D("4000")  # type: ignore[union-attr]
    assert price_at("ETH", first - timedelta(seconds=10)) is None
    assert last_poll("oracle") == first + timedelta(seconds=2)


def test_a_late_tick_joins_the_history_without_displacing_the_newest(sim: SimServer) -> None:
    at = now()

    def tick(symbol: str, price: str, seconds: float) -> Tick:
        return Tick(symbol=symbol, price=D(price), observed_at=at + timedelta(seconds=seconds), provider="t")

    save_ticks([tick("BTC", "70000", 0)])
    save_ticks([tick("BTC", "70100", 1), tick("ETH", "3500", 1)])
    save_ticks([tick("BTC", "69000", 0.5)])  # an older tick arriving late
    assert latest_tick("BTC") == tick("BTC", "70100", 1) and len(tick_history("BTC", at)) == 3
    nearer = tick("BTC", "71000", 1.3)  # not stored: handed over with a scan
    assert price_at("BTC", at + timedelta(seconds=1.2), also=[nearer]) == nearer
    assert price_at("BTC", at + timedelta(seconds=0.9), also=[nearer]) == tick("BTC", "70100", 1)
    far, eth = tick("BTC", "1", 60), tick("ETH", "1", 1.2)
    assert price_at("BTC", at + timedelta(seconds=1.2), also=[far, eth]) == tick("BTC", "70100", 1)


def test_what_moved_is_judged_against_the_previous_poll_and_a_failed_send_is_sent_again(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prices fixed by a stub chain (the simulator's walk moves every second, whatever a test does)."""
    first = now()
    prices = {"BTC": D("70000"), "ETH": D("4000")}

    class FixedChain:
        def fetch(self, symbols: list[str], at: datetime) -> list[Tick]:
            return [Tick(symbol=s, price=p, observed_at=at, provider="stub") for s, p in prices.items()]

    monkeypatch.setattr(marketdata, "oracle_chain", lambda *_: FixedChain())
    sent: list[list[Tick]] = []

    def broker_down(moved: list[Tick]) -> None:
        raise ConnectionError("broker down")

    assert marketdata.poll_oracles(first, send=sent.append) == ["BTC", "ETH"]  # nothing seen before
    prices["ETH"] = D("4100")
    with pytest.raises(ConnectionError):
        marketdata.poll_oracles(first + timedelta(seconds=1), send=broker_down)
    assert marketdata.poll_oracles(first + timedelta(seconds=2), send=sent.append) == ["ETH"]
    assert [(t.symbol, t.price) for t in sent[-1]] == [("ETH", D("4100"))]
    assert marketdata.poll_oracles(first + timedelta(seconds=3), send=sent.append) == []
    assert len(sent) == 2 and len(tick_history("ETH", first)) == 4  # every poll stored its ticks


def test_scripted_jump_shows_up_in_stored_ticks_within_two_polls(sim: SimServer) -> None:
    period = 1.0  # ORACLE_POLL_SECONDS
    marketdata.poll_oracles(now())
    before = latest_tick("BTC").price  # type: ignore[union-attr]
    control(sim.url, "jump", symbol="BTC", pct=5, in_seconds=0.5)
    jump_at = time.monotonic() + 0.5
    polls_after_jump = 0
    while True:
        moved = marketdata.poll_oracles(now())
        if time.monotonic() >= jump_at:
            polls_after_jump += 1
        if latest_tick("BTC").price > before * D("1.04"):  # type: ignore[union-attr]
            break
        assert polls_after_jump < 2, "the jump was not stored within two polls"
        time.sleep(period)
    assert "BTC" in moved and polls_after_jump <= 2


def test_history_reaches_back_to_window_starts_within_the_hour(sim: SimServer) -> None:
    start = now() - timedelta(hours=1, minutes=5)
    for second in range(0, 3900, 30):
        marketdata.poll_oracles(start + timedelta(seconds=second))
    window_start = start + timedelta(minutes=15)
    assert price_at("BTC", window_start, tolerance=timedelta(seconds=31)) is not None
    assert len(tick_history("BTC", start)) == 130


def test_oracle_task_sends_the_scan_with_the_moved_ticks_before_storing_them(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pm_arb_tasks.tasks import marketdata as tasks

    sent: list[tuple[str, dict[str, Any], datetime | None, Tick | None]] = []

    def send_task(name: str, **kw: Any) -> None:
        sent.append((name, kw, last_poll("oracle"), latest_tick("BTC")))

    monkeypatch.setattr(tasks.app, "send_task", send_task)
    moved = tasks.poll_oracles()
    assert sorted(moved) == SYMBOLS
    (name, kwargs, last_poll_when_sent, stored_when_sent), = sent
    assert name == "pm_arb.scan.symbols" and sorted(kwargs["args"][0]) == SYMBOLS
    tick_at = datetime.fromisoformat(kwargs["kwargs"]["tick_at"])
    stored = latest_tick("BTC")
    assert stored is not None and tick_at == stored.observed_at
    assert Tick.model_validate(kwargs["kwargs"]["ticks"][SYMBOLS.index("BTC")]) == stored
    assert kwargs["expires"] == 5
    assert f"BTC {stored.price} ({stored.provider})" in kwargs["kwargsrepr"]  # Flower's line, built by us
    assert (last_poll_when_sent, stored_when_sent) == (None, None)  # the scan went out first
    assert last_poll("oracle") == tick_at


def test_a_failed_scan_dispatch_still_records_the_poll(sim: SimServer) -> None:
    def broker_down(moved: list[Tick]) -> None:
        raise ConnectionError("broker down")

    polled_at = now()
    with pytest.raises(ConnectionError):
        marketdata.poll_oracles(polled_at, send=broker_down)
    assert last_poll("oracle") == polled_at and latest_tick("BTC") is not None

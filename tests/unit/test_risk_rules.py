"""The guardian's pure rules: every limit, the halt, the breaches, the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.domain.risk_rules import RiskLimits, RiskState, evaluate
from pm_arb_tasks.settings import Settings

NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
LIMITS = RiskLimits(
    max_trade=D(20), position_limit=D(20), total_limit=D(100), daily_loss_limit=D(20), drawdown_limit=D(40),
    cooldown=timedelta(seconds=60),
)
HEALTHY = RiskState(equity=D(200), peak_equity=D(200))


def test_limits_from_settings_are_percent_of_bankroll() -> None:
    limits = RiskLimits.from_settings(Settings(_env_file=None))
    assert limits.max_trade == D(20) and limits.position_limit == D(20) and limits.total_limit == D(100)
    assert limits.daily_loss_limit == D(20) and limits.drawdown_limit == D(40)


def test_within_every_limit_is_approved_in_full() -> None:
    verdict = evaluate(D(15), D(0), HEALTHY, LIMITS, NOW)
    assert verdict.approved and verdict.amount == D(15) and verdict.breach is None


def test_over_the_trade_cap_is_reduced_to_it() -> None:
    limits = RiskLimits(**{**LIMITS.__dict__, "max_trade": D(10)})
    verdict = evaluate(D(15), D(0), HEALTHY, limits, NOW)
    assert verdict.approved and verdict.amount == D(10) and "per-trade cap" in verdict.reason


def test_position_limit_reduces_then_rejects() -> None:
    part = RiskState(**{**HEALTHY.__dict__, "market_exposure": D(12)})
    reduced = evaluate(D(15), D(0), part, LIMITS, NOW)
    assert reduced.approved and reduced.amount == D(8)
    below_min = evaluate(D(15), D("8.01"), part, LIMITS, NOW)
    assert not below_min.approved and "position limit" in below_min.reason
    full = RiskState(**{**HEALTHY.__dict__, "market_exposure": D(20)})
    assert not evaluate(D(1), D(0), full, LIMITS, NOW).approved


def test_total_exposure_limit() -> None:
    busy = RiskState(**{**HEALTHY.__dict__, "total_exposure": D("95.5")})
    verdict = evaluate(D(15), D(0), busy, LIMITS, NOW)
    assert verdict.approved and verdict.amount == D("4.50") and "total exposure" in verdict.reason
    full = RiskState(**{**HEALTHY.__dict__, "total_exposure": D(100)})
    assert "total exposure" in evaluate(D(15), D(0), full, LIMITS, NOW).reason


def test_halt_rejects_everything() -> None:
    halted = RiskState(**{**HEALTHY.__dict__, "halted": True, "halt_reason": "operator stop"})
    verdict = evaluate(D(5), D(0), halted, LIMITS, NOW)
    assert not verdict.approved and verdict.reason == "halted: operator stop" and verdict.breach is None


def test_daily_loss_breach_rejects_and_asks_for_a_halt() -> None:
    losing = RiskState(**{**HEALTHY.__dict__, "daily_pnl": D(-20)})
    verdict = evaluate(D(5), D(0), losing, LIMITS, NOW)
    assert not verdict.approved and verdict.breach == "daily_loss"
    assert evaluate(D(5), D(0), RiskState(**{**HEALTHY.__dict__, "daily_pnl": D("-19.99")}), LIMITS, NOW).approved


def test_drawdown_from_peak_breach() -> None:
    down = RiskState(equity=D(250), peak_equity=D(290))
    verdict = evaluate(D(5), D(0), down, LIMITS, NOW)
    assert not verdict.approved and verdict.breach == "drawdown"
    assert evaluate(D(5), D(0), RiskState(equity=D(251), peak_equity=D(290)), LIMITS, NOW).approved


def test_cooldown_per_market() -> None:
    recent = RiskState(**{**HEALTHY.__dict__, "last_approval_at": NOW - timedelta(seconds=59)})
    assert evaluate(D(5), D(0), recent, LIMITS, NOW).reason == "market cooldown"
    older = RiskState(**{**HEALTHY.__dict__, "last_approval_at": NOW - timedelta(seconds=60)})
    assert evaluate(D(5), D(0), older, LIMITS, NOW).approved


def test_expired_request_is_rejected() -> None:
    assert evaluate(D(5), D(0), HEALTHY, LIMITS, NOW, deadline=NOW).reason == "deadline passed"


money = st.decimals(min_value=D(0), max_value=D(300), places=2)


@given(money, money, money, money)
def test_approved_amount_never_breaks_a_limit(amount: D, minimum: D, market: D, total: D) -> None:
    state = RiskState(market_exposure=market, total_exposure=total, equity=D(200), peak_equity=D(200))
    verdict = evaluate(amount, minimum, state, LIMITS, NOW)
    if verdict.approved:
        assert D("0.01") <= verdict.amount <= amount
        assert verdict.amount <= LIMITS.max_trade
        assert market + verdict.amount <= LIMITS.position_limit
        assert total + verdict.amount <= LIMITS.total_limit
        assert verdict.amount >= minimum
    else:
        assert verdict.amount == 0


def test_no_cooldown_means_none_even_for_an_approval_stamped_later() -> None:
    limits = RiskLimits(**{**LIMITS.__dict__, "cooldown": timedelta(0)})
    racing = RiskState(**{**HEALTHY.__dict__, "last_approval_at": NOW + timedelta(milliseconds=5)})
    assert evaluate(D(5), D(0), racing, limits, NOW).approved
    assert evaluate(D(5), D(0), racing, LIMITS, NOW).reason == "market cooldown"

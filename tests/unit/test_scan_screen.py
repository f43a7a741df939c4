"""The scanner's float screen never changes a decision: whatever it settles without the full book,
the exact Decimal evaluation would have settled the same way, and its fair value is pricing's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from pm_arb_tasks.domain.edge import Evaluation, Reason, evaluate_outcome
from pm_arb_tasks.domain.fees import schedule_for
from pm_arb_tasks.domain.models import Book, BookLevel, FeeSchedule, Market, MarketKind, Outcome
from pm_arb_tasks.domain.pricing import Unpriceable, fair_yes, fair_yes_float
from pm_arb_tasks.services.scanning import (
    SCREEN_MARGIN,
    ScanParams,
    below_evaluation,
    evaluate_kept,
    plan_for,
    screen,
    top_of,
)

NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
PARAMS = ScanParams(
    min_edge=D("0.02"), max_trade=D(20), position_limit=D(20), strategy="fixed", bankroll=D(200),
    book_max_age=timedelta(seconds=6),
)


def market(strike: D, hours: int, fees: bool) -> Market:
    return Market(
        market_id="m", symbol="BTC", kind=MarketKind.STRIKE, strike=strike, resolves_at=NOW + timedelta(hours=hours),
        yes_token_id="y", no_token_id="n", fees_enabled=fees,
        fee_schedule=FeeSchedule(rate=D("0.07")) if fees else None,
    )


def book(token: str, asks: list[D], age: float = 0) -> Book:
    levels = tuple(BookLevel(price=p, size=D(50)) for p in sorted(asks))
    return Book(token_id=token, asks=levels, observed_at=NOW - timedelta(seconds=age))


def evaluate_market(
    m: Market, *, spot: float, sigma: float, now: datetime, books: dict[str, Book], params: ScanParams
) -> list[Evaluation]:
    """What a tick's scan decides for one strike market with its books in memory: every outcome
    the screen did not find plainly without edge."""
    plan = plan_for([m])
    screened = screen(
        plan, [top_of(books[t]) if t in books else None for t in plan.tokens], spot=spot, sigma=sigma, now=now,
        window_opens={}, fresh_after=(now - params.book_max_age).timestamp(), min_edge=float(params.min_edge),
    )
    assert not screened.skips and not screened.failed
    return [below_evaluation(outcome, fair, ask) for _, outcome, fair, ask in screened.below] + [
        evaluate_kept(m, outcome, fair, books=books, now=now, params=params) for _, outcome, fair in screened.kept
    ]


def test_a_lagging_market_is_emitted_and_a_stale_book_is_reported() -> None:
    m = market(D(69000), 24, fees=False)
    prob = fair_yes_float(m, 70000.0, 0.5, NOW)
    books = {"y": book("y", [D(str(round(prob - 0.1, 2)))]), "n": book("n", [D("0.99")], age=60)}
    scanned = evaluate_market(m, spot=70000.0, sigma=0.5, now=NOW, books=books, params=PARAMS)
    reasons = {e.outcome: e.reason for e in scanned}
    assert reasons == {Outcome.YES: Reason.EMITTED, Outcome.NO: Reason.STALE}


def test_the_size_is_capped_by_the_whole_position_limit_and_the_guardian_takes_off_the_rest() -> None:
    """The scan does not read the risk book: it asks for up to the position limit, the guardian
    reduces the amount by what the market already holds (under its lock)."""
    m = market(D(69000), 24, fees=False)
    prob = fair_yes_float(m, 70000.0, 0.5, NOW)
    books = {"y": book("y", [D(str(round(prob - 0.1, 2)))]), "n": book("n", [D("0.99")])}
    tight = ScanParams(**{**PARAMS.__dict__, "position_limit": D(8)})
    scanned = evaluate_market(m, spot=70000.0, sigma=0.5, now=NOW, books=books, params=tight)
    emitted = next(e for e in scanned if e.reason is Reason.EMITTED)
    assert emitted.sizing is not None and emitted.sizing.amount == D(8) and emitted.sizing.binding == "position limit"


def test_a_float_tie_at_the_threshold_is_left_to_the_exact_path() -> None:
    """At this fair value the NO ask sits exactly at the threshold in Decimal (gross = 0.02) but
    0.019999999999999962 in float: without the margin the screen would call it below threshold."""
    m = market(D(69007), 24, fees=False)
    prob_no = 1 - D(repr(fair_yes_float(m, 70000.0, 0.5, NOW)))
    ask = prob_no - PARAMS.min_edge
    assert (1.0 - fair_yes_float(m, 70000.0, 0.5, NOW)) - float(ask) < 0.02
    books = {"y": book("y", [D("0.99")]), "n": book("n", [ask])}
    scanned = evaluate_market(m, spot=70000.0, sigma=0.5, now=NOW, books=books, params=PARAMS)
    no = next(e for e in scanned if e.outcome is Outcome.NO)
    assert no == exact(m, Outcome.NO, prob_no, books, PARAMS) and no.reason is not Reason.BELOW_THRESHOLD


def test_closed_resolved_and_not_yet_open_markets() -> None:
    start = NOW + timedelta(minutes=5)
    window = Market(
        market_id="w", kind=MarketKind.UPDOWN, window_start=start, resolves_at=start + timedelta(minutes=15),
        yes_token_id="wy", no_token_id="wn",
    )
    resolved = market(D(69000), 24, fees=False).model_copy(update={"resolves_at": NOW})
    paused = market(D(69000), 24, fees=False).model_copy(update={"accepting_orders": False})
    closed = market(D(69000), 24, fees=False).model_copy(update={"closed": True})
    plan = plan_for([window, resolved, paused, closed])
    screened = screen(
        plan, [None] * len(plan.tokens), spot=70000.0, sigma=0.5, now=NOW, window_opens={}, fresh_after=0.0,
        min_edge=0.02,
    )
    assert screened.markets == 2  # the resolved and the closed market are not scanned at all
    assert sorted((m.market_id, r) for m, r in screened.skips) == [("m", Reason.CLOSED), ("w", Reason.WINDOW_NOT_OPEN)]
    opened = screen(
        plan, [None] * len(plan.tokens), spot=70000.0, sigma=0.5, now=start, window_opens={start: None},
        fresh_after=0.0, min_edge=0.02,
    )
    assert ("w", Reason.NO_STRIKE) in {(m.market_id, r) for m, r in opened.skips}


# --- the screen against the exact path, on whole universes --------------------------------------------------

TIMES = [None, NOW - timedelta(hours=1), NOW] + [NOW + timedelta(seconds=40), NOW + timedelta(minutes=15),
                                                   NOW + timedelta(hours=6), NOW + timedelta(days=4)] * 3  # fmt: skip
STARTS = [None, NOW - timedelta(minutes=10), NOW - timedelta(minutes=3), NOW, NOW + timedelta(minutes=2)]
EXPONENTS = [D(1), D("0.5"), D(2)]


MOSTLY_TRUE = st.sampled_from([True] * 9 + [False])


@st.composite
def markets(draw: st.DrawFn, index: int) -> Market:
    kind = draw(st.sampled_from([MarketKind.STRIKE] * 3 + [MarketKind.UPDOWN] * 3 + [MarketKind.UNCLASSIFIED]))
    strike = draw(st.sampled_from([None, D(0), D(-5)]) | st.integers(60000, 80000).map(D) | st.none())
    schedule = None
    fees = draw(st.booleans())
    if fees and draw(st.booleans()):  # a fee-enabled market without a schedule pays the fallback
        rate = draw(st.sampled_from([D("0.0624"), D("0.07"), D("0.25")]))
        schedule = FeeSchedule(rate=rate, exponent=draw(st.sampled_from(EXPONENTS)))
    return Market(
        market_id=f"m{index}", symbol="BTC", kind=kind, strike=strike,
        window_start=draw(st.sampled_from(STARTS)), resolves_at=draw(st.sampled_from(TIMES)),
        yes_token_id=f"m{index}-y", no_token_id=f"m{index}-n", fees_enabled=fees, fee_schedule=schedule,
        active=draw(MOSTLY_TRUE), accepting_orders=draw(MOSTLY_TRUE), closed=not draw(MOSTLY_TRUE),
    )


def reference_fair(m: Market, spot: float, sigma: float, opens: dict[datetime, D | None]) -> D | Reason:
    """What the scan must conclude for a market, straight from the pricing functions."""
    if not (m.active and m.accepting_orders):
        return Reason.CLOSED
    try:
        return fair_yes(m, D(repr(spot)), D(repr(sigma)), NOW, opens.get(m.window_start) if m.window_start else None)
    except Unpriceable as unpriceable:
        return unpriceable.reason


def exact(m: Market, outcome: Outcome, prob: D, books: dict[str, Book], params: ScanParams) -> Evaluation:
    b = books.get(m.token_for(outcome))
    if b is None or NOW - b.observed_at > params.book_max_age:
        return Evaluation(outcome, prob, Reason.STALE)
    return evaluate_outcome(
        outcome=outcome, prob=prob, asks=b.asks, schedule=schedule_for(m), min_edge=params.min_edge,
        tick=b.tick_size or m.tick_size, max_trade=params.max_trade, room=params.position_limit,
        min_order_size=b.min_order_size or m.min_order_size, strategy=params.strategy, bankroll=params.bankroll,
    )


def asks_near(draw: st.DrawFn, fair: float, min_edge: D) -> list[D]:
    """Asks anywhere; on either side of the threshold; right at the screen's boundaries (at fair,
    at fair - threshold)."""
    prob = D(repr(fair))
    near = [prob, prob - min_edge, prob + D("1e-12"), prob - min_edge - D("1e-12"), prob - min_edge + D("1e-12")]
    near += [(prob - offset).quantize(D("0.001")) for offset in (D("-0.01"), min_edge / 2, D("0.05"), D("0.2"))]
    chosen = draw(st.lists(st.one_of(st.decimals(D("0.001"), D("0.999"), places=3), st.sampled_from(near)),
                           max_size=2))  # fmt: skip
    return [a for a in chosen if D(0) < a < D(1)]


@settings(max_examples=300, deadline=None)
@given(
    st.data(), st.integers(1, 6), st.sampled_from([0.0, 60000.0, 69999.5, 70000.0, 80000.0]),
    st.floats(min_value=0.05, max_value=3), st.sampled_from([D("0.02"), D("0.005")]),
    st.sampled_from(["fixed", "kelly"]),
)
def test_the_screen_agrees_with_the_exact_evaluation(
    data: st.DataObject, count: int, spot: float, sigma: float, min_edge: D, strategy: str
) -> None:
    params = ScanParams(**{**PARAMS.__dict__, "min_edge": min_edge, "strategy": strategy})
    universe = [data.draw(markets(i)) for i in range(count)]
    opens = {start: data.draw(st.sampled_from([None, D(69000), D(70000)])) for start in STARTS if start}
    books: dict[str, Book] = {}
    expected: dict[str, D | Reason] = {}
    for m in universe:
        expected[m.market_id] = fair = reference_fair(m, spot, sigma, opens)
        prob = fair if isinstance(fair, D) else D("0.5")
        for token, outcome_prob in ((m.yes_token_id, prob), (m.no_token_id, 1 - prob)):
            age = data.draw(st.sampled_from([0, 0, 0, 3, 6, 6.5, 60, None]))
            if age is not None:
                books[token] = book(token, asks_near(data.draw, float(outcome_prob), min_edge), age)
    plan = plan_for(universe)
    screened = screen(
        plan, [top_of(books[t]) if t in books else None for t in plan.tokens], spot=spot, sigma=sigma, now=NOW,
        window_opens=opens, fresh_after=(NOW - params.book_max_age).timestamp(), min_edge=float(min_edge),
    )

    scanned = {m.market_id for m in universe if not m.closed and not (m.resolves_at and m.resolves_at <= NOW)}
    assert screened.markets == len(scanned) and not screened.failed
    assert {m.market_id: r for m, r in screened.skips} == {
        i: r for i, r in expected.items() if i in scanned and isinstance(r, Reason)
    }
    looked_at: dict[tuple[str, Outcome], Evaluation] = {}
    for m, outcome, fair_f, ask in screened.below:
        looked_at[m.market_id, outcome] = below_evaluation(outcome, fair_f, ask)
    for m, outcome, fair_f in screened.kept:
        assert D(repr(fair_f)) == expected[m.market_id]  # pricing's fair value, bit for bit
        looked_at[m.market_id, outcome] = evaluate_kept(m, outcome, fair_f, books=books, now=NOW, params=params)
    priced = [m for m in universe if m.market_id in scanned and isinstance(expected[m.market_id], D)]
    for m in priced:
        prob_yes = expected[m.market_id]
        assert isinstance(prob_yes, D)
        for outcome, prob in ((Outcome.YES, prob_yes), (Outcome.NO, 1 - prob_yes)):
            reference = exact(m, outcome, prob, books, params)
            found = looked_at.get((m.market_id, outcome))
            if found is None:
                assert reference.reason is Reason.NO_EDGE  # only a plain no-edge goes uncounted
            elif found.reason is Reason.BELOW_THRESHOLD:
                assert reference.reason is Reason.BELOW_THRESHOLD and found.prob == reference.prob
                assert abs(found.ask - reference.ask) < SCREEN_MARGIN  # type: ignore[operator]
            else:
                assert found == reference
    assert screened.no_edge == 2 * len(priced) - len(looked_at)

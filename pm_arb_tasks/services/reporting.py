"""What the operator reads: the status snapshot, the P&L report and its chart, the summaries.

P&L model (BUY orders, the only side the strategy trades): a filled trade's P&L is
`shares * payout - cost - fee`, realized once its market has a winning outcome (payout 1 or 0),
otherwise unrealized at the current best bid of its token (the price it could be sold at;
without a book it counts as unpriced and contributes nothing). Daily P&L attributes each
trade's P&L to the UTC day it was placed; the equity curve starts at the bankroll plus the
P&L of earlier trades. The figures come from `paper_trades` or `live_trades` per PAPER_TRADING.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from pm_arb_tasks.celery_app import QUEUES
from pm_arb_tasks.db.models import MarketRow, OpportunityRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.db.trades import trade_table
from pm_arb_tasks.domain.models import ZERO, TradeStatus
from pm_arb_tasks.services import alerts, watchdog
from pm_arb_tasks.services.positions import PositionMark, marks
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.halt import HaltState, read_halt

log = logging.getLogger(__name__)
T = TypeVar("T")
ONE = Decimal(1)


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# Pure: trade facts -> figures.


@dataclass(frozen=True)
class TradeFact:
    """One trade row with what P&L needs: its market's kind and result, and a mark price."""

    trade_id: str
    market_id: str
    market_label: str
    kind: str
    outcome: str
    status: str
    created_at: datetime
    filled_at: datetime | None
    max_price: Decimal
    fill_price: Decimal | None
    filled: Decimal
    fee: Decimal
    winning_outcome: str | None = None
    mark: Decimal | None = None

    @property
    def is_fill(self) -> bool:
        return self.filled > 0 and self.fill_price is not None

    @property
    def cost(self) -> Decimal:
        return self.filled * self.fill_price if self.is_fill else ZERO

    @property
    def realized(self) -> Decimal | None:
        if not self.is_fill or self.winning_outcome is None:
            return None
        payout = ONE if self.winning_outcome == self.outcome else ZERO
        return self.filled * payout - self.cost - self.fee

    @property
    def unrealized(self) -> Decimal | None:
        if not self.is_fill or self.winning_outcome is not None or self.mark is None:
            return None
        return self.filled * self.mark - self.cost - self.fee

    @property
    def pnl(self) -> Decimal:
        return self.realized if self.realized is not None else (self.unrealized or ZERO)

    @property
    def latency_seconds(self) -> float | None:
        if not self.is_fill or self.filled_at is None:
            return None
        return (self.filled_at - self.created_at).total_seconds()


@dataclass(frozen=True)
class Figures:
    trades: int = 0
    rejected: int = 0  # refused before reaching the venue or by it (halt, deadline, risk, validation)
    filled: int = 0  # trades with any fill (filled or partial)
    fill_rate: Decimal | None = None  # filled / (trades - rejected)
    avg_slippage: Decimal | None = None  # mean of fill_price - max_price over fills (<= 0: better than limit)
    volume: Decimal = ZERO  # USD spent on fills
    fees: Decimal = ZERO
    avg_latency_seconds: float | None = None  # filled_at - created_at
    max_latency_seconds: float | None = None
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    unpriced: int = 0  # open fills without a book to mark them

    @property
    def pnl(self) -> Decimal:
        return self.realized + self.unrealized


def _mean(values: list[T]) -> T | None:
    return sum(values[1:], values[0]) / len(values) if values else None  # type: ignore[operator]


def figures(facts: Iterable[TradeFact]) -> Figures:
    facts = list(facts)
    fills = [f for f in facts if f.is_fill]
    rejected = sum(1 for f in facts if f.status == TradeStatus.REJECTED.value)
    sent = len(facts) - rejected
    latencies = [s for f in fills if (s := f.latency_seconds) is not None]
    return Figures(
        trades=len(facts),
        rejected=rejected,
        filled=len(fills),
        fill_rate=Decimal(len(fills)) / sent if sent else None,
        avg_slippage=_mean([f.fill_price - f.max_price for f in fills]),
        volume=sum((f.cost for f in fills), ZERO),
        fees=sum((f.fee for f in facts), ZERO),
        avg_latency_seconds=_mean(latencies),
        max_latency_seconds=max(latencies, default=None),
        realized=sum((r for f in fills if (r := f.realized) is not None), ZERO),
        unrealized=sum((u for f in fills if (u := f.unrealized) is not None), ZERO),
        unpriced=sum(1 for f in fills if f.realized is None and f.unrealized is None),
    )


def grouped(facts: Iterable[TradeFact], key: Callable[[TradeFact], str]) -> dict[str, Figures]:
    groups: dict[str, list[TradeFact]] = {}
    for fact in facts:
        groups.setdefault(key(fact), []).append(fact)
    return {name: figures(group) for name, group in sorted(groups.items())}


@dataclass(frozen=True)
class PnlReport:
    mode: str
    since: datetime
    until: datetime
    start_equity: Decimal
    total: Figures
    by_kind: dict[str, Figures]
    by_market: dict[str, Figures]
    daily: list[tuple[date, Decimal]]
    equity: list[tuple[datetime, Decimal]] = field(default_factory=list)

    @property
    def end_equity(self) -> Decimal:
        return self.equity[-1][1] if self.equity else self.start_equity


def build_report(
    facts: Iterable[TradeFact], *, mode: str, since: datetime, until: datetime, start_equity: Decimal
) -> PnlReport:
    """Figures overall, by market kind and by market; daily P&L and the equity curve."""
    facts = sorted((f for f in facts if since <= f.created_at < until), key=lambda f: f.created_at)
    per_day: dict[date, Decimal] = {}
    day = since.date()
    while day <= (until - timedelta(microseconds=1)).date():
        per_day[day] = ZERO
        day += timedelta(days=1)
    equity, points = start_equity, [(since, start_equity)]
    for fact in facts:
        if fact.is_fill:
            per_day[fact.created_at.date()] = per_day.get(fact.created_at.date(), ZERO) + fact.pnl
            equity += fact.pnl
            points.append((fact.created_at, equity))
    points.append((until, equity))
    return PnlReport(
        mode=mode, since=since, until=until, start_equity=start_equity, total=figures(facts),
        by_kind=grouped(facts, lambda f: f.kind), by_market=grouped(facts, lambda f: f.market_label),
        daily=sorted(per_day.items()), equity=points,
    )


# I/O: loading facts.


def _label(market: MarketRow | None, market_id: str) -> str:
    if market is not None and (market.slug or market.question):
        return (market.slug or market.question)[:48]
    return market_id[:16]


def _marks(token_ids: Iterable[str]) -> dict[str, Decimal]:
    """Best bid per token from the cached books; an unreachable Redis leaves them unpriced."""
    from redis.exceptions import RedisError

    from pm_arb_tasks.state.market_data import get_book

    marks: dict[str, Decimal] = {}
    try:
        for token_id in set(token_ids):
            book = get_book(token_id)
            if book is not None and book.best_bid is not None:
                marks[token_id] = book.best_bid.price
    except (RedisError, ValueError) as exc:
        log.warning("books unavailable for marking positions: %s", exc)
    return marks


def load_facts(session: Session, mode: str, until: datetime, since: datetime | None = None,
               fills_only_before: datetime | None = None) -> list[TradeFact]:
    """Trades placed before `until`; before `fills_only_before` only the ones that filled."""
    table = trade_table(mode)
    query = select(table, MarketRow).outerjoin(MarketRow, MarketRow.market_id == table.market_id)
    query = query.where(table.created_at < until)
    if since is not None:
        query = query.where(table.created_at >= since)
    if fills_only_before is not None:
        query = query.where(or_(table.created_at >= fills_only_before, table.filled_amount > 0))
    rows = session.execute(query.order_by(table.created_at, table.id)).all()
    open_tokens = [t.token_id for t, m in rows if t.filled_amount > 0 and (m is None or m.winning_outcome is None)]
    marks = _marks(open_tokens)
    return [
        TradeFact(
            trade_id=t.trade_id, market_id=t.market_id, market_label=_label(m, t.market_id),
            kind=m.kind if m is not None else "unknown", outcome=t.outcome, status=t.status,
            created_at=t.created_at, filled_at=t.filled_at, max_price=t.max_price, fill_price=t.fill_price,
            filled=t.filled_amount, fee=t.fee, winning_outcome=m.winning_outcome if m is not None else None,
            mark=marks.get(t.token_id),
        )
        for t, m in rows
    ]


def pnl_report(*, since: datetime, until: datetime) -> PnlReport:
    mode = get_settings().trading_mode
    with session_scope() as session:
        facts = load_facts(session, mode, until, fills_only_before=since)
    earlier = sum((f.pnl for f in facts if f.created_at < since and f.is_fill), ZERO)
    return build_report(
        facts, mode=mode, since=since, until=until, start_equity=get_settings().initial_bankroll + earlier
    )


def report_for_days(days: int, now: datetime | None = None) -> PnlReport:
    until = now or datetime.now(UTC)
    return pnl_report(since=until - timedelta(days=days), until=until)


def plot_report(report: PnlReport, path: Path) -> Path:
    """Equity curve above, daily P&L bars below; Agg canvas, no GUI and no global pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    times = [t for t, _ in report.equity]
    top.step(times, [float(v) for _, v in report.equity], where="post", color="tab:blue")
    top.axhline(float(report.start_equity), color="grey", linewidth=0.8, linestyle="--")
    top.set_title(f"Equity ({report.mode}), {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
    top.set_ylabel("USD")
    days = [datetime.combine(d, datetime.min.time()) for d, _ in report.daily]
    values = [float(v) for _, v in report.daily]
    colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
    bottom.bar(days, values, color=colors, width=0.9, align="edge")  # each bar spans its UTC day
    bottom.axhline(0, color="grey", linewidth=0.8)
    bottom.set_title("Daily P&L (by trade date)")
    bottom.set_ylabel("USD")
    for axes in (top, bottom):
        axes.tick_params(axis="x", labelrotation=30)
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


# The status snapshot: every part read on its own, so one dead service still leaves a useful table.


@dataclass(frozen=True)
class QueueStatus:
    name: str
    consumers: tuple[str, ...]
    backlog: int | None


@dataclass(frozen=True)
class StatusSnapshot:
    at: datetime
    mode: str
    halt: HaltState | None
    queues: list[QueueStatus]
    tick_age: float | None
    book_age: float | None
    positions: list[PositionMark]
    labels: dict[str, str]  # market id -> slug or question, for the positions
    today: Figures | None
    realized_today: Decimal | None  # settled today, as the risk guardian counts the daily loss
    errors: list[str] = field(default_factory=list)


def _attempt(errors: list[str], what: str, read: Callable[[], T], default: T) -> T:
    try:
        return read()
    except Exception as exc:  # a status screen reports a broken part instead of crashing
        first_line = (str(exc).splitlines() or [""])[0]
        errors.append(f"{what}: {type(exc).__name__}: {first_line[:160]}")
        return default


def _labels(market_ids: Iterable[str]) -> dict[str, str]:
    ids = set(market_ids)
    with session_scope() as session:
        rows = session.scalars(select(MarketRow).where(MarketRow.market_id.in_(ids))).all() if ids else []
        found = {row.market_id: row for row in rows}
    return {market_id: _label(found.get(market_id), market_id) for market_id in ids}


def _realized_since(mode: str, since: datetime) -> Decimal:
    with session_scope() as session:
        total = session.scalar(
            select(func.coalesce(func.sum(PositionRow.realized_pnl), 0)).where(
                PositionRow.mode == mode, PositionRow.settled_at >= since
            )
        )
    return Decimal(total or 0)


def _halt() -> HaltState:
    with session_scope() as session:
        return read_halt(session)


def status_snapshot(now: datetime | None = None) -> StatusSnapshot:
    now = now or datetime.now(UTC)
    mode = get_settings().trading_mode
    errors: list[str] = []
    workers = _attempt(errors, "workers", watchdog.observed_workers, {})
    backlog = _attempt(errors, "backlog", watchdog.queue_backlogs, {})
    queues = [
        QueueStatus(q, tuple(sorted(h for h, qs in workers.items() if q in qs)), backlog.get(q)) for q in QUEUES
    ]
    tick_at, book_at = _attempt(errors, "market data", watchdog.data_times, (None, None))
    positions = _attempt(errors, "positions", lambda: marks(mode), [])
    start = day_start(now)

    def today() -> Figures:
        with session_scope() as session:
            return figures(load_facts(session, mode, now, since=start))

    return StatusSnapshot(
        at=now, mode=mode, halt=_attempt(errors, "halt flag", _halt, None), queues=queues,
        tick_age=(now - tick_at).total_seconds() if tick_at else None,
        book_age=(now - book_at).total_seconds() if book_at else None,
        positions=positions,
        labels=_attempt(errors, "market names", lambda: _labels(p.market_id for p in positions), {}),
        today=_attempt(errors, "today's trades", today, None),
        realized_today=_attempt(errors, "realized P&L", lambda: _realized_since(mode, start), None),
        errors=errors,
    )


# Scheduled summaries.


def _pct(value: Decimal | None) -> str:
    return f"{value * 100:.0f}%" if value is not None else "n/a"


def summary_text(report: PnlReport) -> str:
    t = report.total
    return (
        f"{t.trades} trades, {t.filled} filled (fill rate {_pct(t.fill_rate)}), volume {t.volume:.2f} USD, "
        f"fees {t.fees:.2f}; P&L {t.pnl:+.2f} (realized {t.realized:+.2f}, unrealized {t.unrealized:+.2f}); "
        f"equity {report.end_equity:.2f} USD ({report.mode})"
    )


def send_daily_summary(now: datetime) -> str:
    """The UTC day that just ended, once per day whatever beat or Celery redeliver."""
    until = day_start(now)
    since = until - timedelta(days=1)
    report = pnl_report(since=since, until=until)
    return alerts.raise_alert(
        kind="daily_summary", priority=alerts.NORMAL, title=f"Daily summary {since:%Y-%m-%d}",
        message=summary_text(report), alert_id=f"daily-{report.mode}-{since:%Y%m%d}",
    )


def opportunity_counts(since: datetime, until: datetime) -> tuple[int, int, Counter[str]]:
    """(evaluated, emitted, filtered reasons) for opportunities observed in [since, until)."""
    with session_scope() as session:
        rows = session.execute(
            select(OpportunityRow.emitted, OpportunityRow.reason, func.count())
            .where(OpportunityRow.observed_at >= since, OpportunityRow.observed_at < until)
            .group_by(OpportunityRow.emitted, OpportunityRow.reason)
        ).all()
    reasons: Counter[str] = Counter()
    emitted = 0
    for was_emitted, reason, count in rows:
        if was_emitted:
            emitted += count
        else:
            reasons[reason or "filtered"] += count
    return emitted + sum(reasons.values()), emitted, reasons


def send_hourly_opportunities(now: datetime) -> str:
    until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    since = until - timedelta(hours=1)
    evaluated, emitted, reasons = opportunity_counts(since, until)
    top = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common(3))
    return alerts.raise_alert(
        kind="hourly_opportunities", priority=alerts.LOW, title=f"Opportunities {since:%H:%M}-{until:%H:%M} UTC",
        message=f"{evaluated} evaluated, {emitted} sent as trade requests" + (f"; filtered: {top}" if top else ""),
        alert_id=f"opps-{since:%Y%m%d%H}",
    )

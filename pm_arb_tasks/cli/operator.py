"""The operator's commands: status, report, alert, flower."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import click

from pm_arb_tasks.cli.app import cli


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart: readable in any terminal and in a log."""
    widths = [max(len(click.unstyle(str(cell))) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        padded = (str(c) + " " * (w - len(click.unstyle(str(c)))) for c, w in zip(cells, widths, strict=False))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def pairs(rows: Sequence[tuple[str, str]]) -> str:
    """`label  value` lines with the values aligned."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


@contextmanager
def database_errors() -> Iterator[None]:
    """A database the command cannot use is one clear line, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        first_line = (str(exc.orig if getattr(exc, "orig", None) else exc).splitlines() or [""])[0]
        raise click.ClickException(f"database unavailable: {first_line[:200]} (is `pm-arb db upgrade` done?)") from exc


def _bad(text: str) -> str:
    return click.style(text, fg="red", bold=True)


def _ok(text: str) -> str:
    return click.style(text, fg="green")


def _money(value: Decimal | None, signed: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _age(seconds: float | None, limit: float) -> str:
    if seconds is None:
        return _bad("never")
    text = f"{seconds:.1f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"
    return _bad(text + " (stale)") if seconds > limit else _ok(text)


@cli.command()
def status() -> None:
    """Halt state, consumers and backlog per queue, data ages, open positions, today's P&L."""
    from pm_arb_tasks.services.reporting import status_snapshot
    from pm_arb_tasks.services.watchdog import EXECUTE_QUEUE, Thresholds
    from pm_arb_tasks.settings import get_settings

    snap = status_snapshot()
    limits = Thresholds.from_settings(get_settings())
    click.echo(f"pm-arb status  {snap.mode} mode  {snap.at:%Y-%m-%d %H:%M:%S} UTC\n")
    if snap.halt is None:
        trading = _bad("UNKNOWN (halt flag unreadable: the executor treats this as halted)")
    elif snap.halt.halted:
        since = f" since {snap.halt.since:%Y-%m-%d %H:%M} UTC" if snap.halt.since else ""
        trading = _bad(f"HALTED{since}: {snap.halt.reason or 'no reason given'}") + "  (pm-arb resume)"
    else:
        trading = _ok("RUNNING")
    click.echo(
        pairs(
            [
                ("trading", trading),
                ("oracle tick", _age(snap.tick_age, limits.tick_stale_seconds)),
                ("book poll", _age(snap.book_age, limits.book_stale_seconds)),
            ]
        )
    )
    rows = []
    for queue in snap.queues:
        paused = queue.name == EXECUTE_QUEUE and snap.halt is not None and snap.halt.halted
        consumers = ", ".join(queue.consumers) or ("(paused: halted)" if paused else _bad("NONE"))
        backlog = "?" if queue.backlog is None else str(queue.backlog)
        rows.append((queue.name, consumers, backlog))
    click.echo("\n" + table(("QUEUE", "CONSUMERS", "BACKLOG"), rows))
    click.echo(f"\nOPEN POSITIONS ({len(snap.positions)})")
    if snap.positions:
        click.echo(
            table(
                ("MARKET", "OUTCOME", "SHARES", "AVG", "MARK", "UNREALIZED"),
                [
                    (snap.labels.get(p.market_id, p.market_id[:16]), p.outcome, f"{p.quantity:.2f}",
                     f"{p.avg_price:.4f}" if p.avg_price else "-", f"{p.mark:.4f}" if p.mark is not None else "-",
                     _money(p.unrealized))
                    for p in snap.positions
                ],
            )
        )
    today = snap.today
    if today is not None:
        click.echo(
            f"\nTODAY  {today.trades} trades, {today.filled} filled, fees {today.fees:.2f} USD, "
            f"P&L of today's trades {_money(today.pnl)} USD; realized (settled today) {_money(snap.realized_today)}"
        )
    for error in snap.errors:
        click.echo(_bad(f"could not read {error}"), err=True)


def _figures_rows(groups: dict) -> list[tuple[str, ...]]:
    return [
        (name, str(f.trades), str(f.filled), _pct(f.fill_rate), _slippage(f.avg_slippage), f"{f.volume:.2f}",
         f"{f.fees:.2f}", _seconds(f.avg_latency_seconds), _money(f.realized), _money(f.unrealized), _money(f.pnl))
        for name, f in groups.items()
    ]


def _pct(value: Decimal | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def _slippage(value: Decimal | None) -> str:
    """Fill price minus limit price, in price units: negative is better than the limit."""
    return f"{value:+.4f}" if value is not None else "-"


def _seconds(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else "-"


GROUP_HEADERS = (
    "TRADES", "FILLED", "FILL RATE", "AVG SLIPPAGE", "VOLUME", "FEES", "AVG FILL LATENCY", "REALIZED", "UNREALIZED",
    "P&L",
)


@cli.command()
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True, help="Look back this many days.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the equity curve and daily P&L to this PNG file.")
def report(days: int, plot_path: Path | None) -> None:
    """P&L report: trades, fill rate, slippage, fees, latency, P&L by market kind and by market."""
    from pm_arb_tasks.services.reporting import plot_report, report_for_days

    with database_errors():
        rep = report_for_days(days)
    t = rep.total
    latency = (
        f"avg {_seconds(t.avg_latency_seconds)}, max {_seconds(t.max_latency_seconds)}"
        if t.avg_latency_seconds is not None
        else "-"
    )
    click.echo(f"P&L report ({rep.mode}), {rep.since:%Y-%m-%d %H:%M} to {rep.until:%Y-%m-%d %H:%M} UTC\n")
    click.echo(
        pairs(
            [
                ("trades", f"{t.trades} ({t.rejected} rejected before or at the venue)"),
                ("filled", f"{t.filled}, fill rate {_pct(t.fill_rate)}"),
                ("avg slippage", f"{_slippage(t.avg_slippage)} vs limit price" if t.avg_slippage is not None else "-"),
                ("volume", f"{t.volume:.2f} USD"),
                ("fees paid", f"{t.fees:.2f} USD"),
                ("fill latency", latency),
                ("realized P&L", f"{_money(t.realized)} USD"),
                ("unrealized P&L", f"{_money(t.unrealized)} USD" + (f" ({t.unpriced} unpriced)" if t.unpriced else "")),
                ("total P&L", f"{_money(t.pnl)} USD"),
                ("equity", f"{rep.start_equity:.2f} -> {rep.end_equity:.2f} USD"),
            ]
        )
    )
    if rep.by_kind:
        click.echo("\n" + table(("MARKET KIND", *GROUP_HEADERS), _figures_rows(rep.by_kind)))
        click.echo("\n" + table(("MARKET", *GROUP_HEADERS), _figures_rows(rep.by_market)))
    if plot_path is not None:
        click.echo(f"\nchart written to {plot_report(rep, plot_path)}")


@cli.command()
@click.option("--test", "send_test", is_flag=True, help="Send one test alert now and say whether it arrived.")
@click.option("--recent", default=10, show_default=True, help="Without --test: list this many recent alerts.")
def alert(send_test: bool, recent: int) -> None:
    """Send a test alert (--test), or list the most recent alerts and their delivery."""
    from pm_arb_tasks.services import alerts

    if send_test:
        with database_errors():
            result = alerts.send_test_alert()
        if result.delivery is alerts.Delivery.SENT:
            click.echo(_ok(f"delivered to Pushover after {result.attempts} attempt(s) (alert {result.alert_id})"))
            return
        if result.delivery is alerts.Delivery.LOGGED:
            raise click.ClickException(
                "not sent: PUSHOVER_USER_KEY / PUSHOVER_API_TOKEN are empty (alert recorded and logged only)"
            )
        raise click.ClickException(
            f"not delivered ({result.delivery.value} after {result.attempts} attempt(s)): {result.error or 'no detail'}"
        )
    with database_errors():
        recent_rows = alerts.recent_alerts(recent)
    click.echo(
        table(
            ("WHEN (UTC)", "PRIORITY", "KIND", "DELIVERY", "TITLE"),
            [
                (f"{row.created_at:%m-%d %H:%M:%S}", f"{row.priority:+d}", row.kind,
                 row.delivery if row.delivery in ("sent", "logged", "collapsed") else _bad(row.delivery), row.title)
                for row in recent_rows
            ],
        )
    )


def basic_auth_problem(value: str) -> str | None:
    """Flower takes comma-separated `user:password` pairs; each must have both parts."""
    if not value:
        return "FLOWER_BASIC_AUTH is not set: Flower is never started without a login (set user:password in .env)"
    for credential in value.split(","):
        user, sep, password = credential.partition(":")
        if not sep or not user.strip() or not password:
            return "FLOWER_BASIC_AUTH must be user:password (several separated by commas)"
    return None


def flower_command(port: int) -> list[str]:
    """The command line: no credential on it (`ps` shows it); Flower reads FLOWER_BASIC_AUTH itself."""
    return [sys.executable, "-m", "celery", "-A", "pm_arb_tasks", "flower", f"--port={port}"]


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Default: FLOWER_PORT (5555).")
def flower(port: int | None) -> None:
    """Flower behind basic auth; refuses to start without a valid FLOWER_BASIC_AUTH."""
    from pm_arb_tasks.settings import get_settings

    settings = get_settings()
    auth = settings.flower_basic_auth.get_secret_value()
    problem = basic_auth_problem(auth)
    if problem:
        raise click.ClickException(problem)
    command = flower_command(port or settings.flower_port)
    click.echo(f"starting Flower on port {port or settings.flower_port} (login from FLOWER_BASIC_AUTH)")
    sys.stdout.flush()
    env = {**os.environ, "FLOWER_BASIC_AUTH": auth, "FLOWER_MAX_TASKS": str(settings.flower_max_tasks)}
    os.execvpe(command[0], command, env)


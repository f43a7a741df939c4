"""Venue commands: `trade` (one manual order through risk and execute), `creds`, `check`."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pm_arb_tasks.cli.app import cli, confirm_live_if_interactive

if TYPE_CHECKING:
    from pm_arb_tasks.db.models import LiveTradeRow, PaperTradeRow

ENV_NAMES = ("POLYMARKET_API_KEY", "POLYMARKET_SECRET", "POLYMARKET_PASSPHRASE")
OUTCOME_WAIT_MARGIN = 20.0  # seconds past the deadline: persist and reconciliation need a moment


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise click.BadParameter(f"{text!r} is not a number", param_hint=name) from None
    if not value.is_finite():
        raise click.BadParameter(f"{text!r} is not a number", param_hint=name)
    return value


def mask(value: str, shown: int = 4) -> str:
    """Enough to recognise a value, never enough to use it."""
    return (value[:shown] + "…" + "*" * 8) if len(value) > 2 * shown else "*" * 8


@cli.command()
@click.option("--market", "market_id", required=True, help="Condition id of the market.")
@click.option("--outcome", type=click.Choice(["YES", "NO"], case_sensitive=False), required=True)
@click.option("--amount", default="1", show_default=True, help="USD to spend.")
@click.option("--limit-price", default=None, help="Most to pay per share (default: the stored best ask).")
@click.option("--token-id", default=None, help="Outcome token id (default: from the cached market).")
@click.option("--order-type", type=click.Choice(["FOK", "FAK"]), default=None, help="Default: ORDER_TYPE.")
def trade(
    market_id: str, outcome: str, amount: str, limit_price: str | None, token_id: str | None, order_type: str | None
) -> None:
    """Place one small order through the same risk and execute path the scanner uses."""
    from pm_arb_tasks.domain.models import OrderType, Outcome, TradeRequest
    from pm_arb_tasks.services.dispatch import dispatch
    from pm_arb_tasks.settings import get_settings
    from pm_arb_tasks.state.market_data import get_book, get_market

    confirm_live_if_interactive()
    settings = get_settings()
    side = Outcome(outcome.upper())
    market = get_market(market_id)
    token = token_id or (market.token_for(side) if market else "")
    if not token:
        raise click.ClickException(f"market {market_id} is not in the cache: pass --token-id")
    if limit_price is not None:
        limit = _decimal(limit_price, "--limit-price")
    else:
        book = get_book(token)
        if book is None or book.best_ask is None:
            raise click.ClickException("no stored order book for the token: pass --limit-price")
        limit = book.best_ask.price
    spend = _decimal(amount, "--amount")
    if not 0 < limit < 1 or spend <= 0:
        raise click.ClickException("--limit-price must be inside (0, 1) and --amount positive")
    if market is not None and market.min_order_size and spend / limit < market.min_order_size:
        smallest = (market.min_order_size * limit).quantize(Decimal("0.01"), rounding="ROUND_UP")
        raise click.ClickException(
            f"${spend} buys {spend / limit:.2f} shares at {limit}, below the market's minimum order of "
            f"{market.min_order_size} shares: use --amount {smallest} or more"
        )
    now = datetime.now(UTC)
    request = TradeRequest(
        market_id=market_id, token_id=token, outcome=side, amount=spend, limit_price=limit,
        order_type=OrderType(order_type or settings.order_type), tick_at=now,
        deadline=now + timedelta(seconds=settings.trade_ttl_seconds), strategy="manual", opportunity_id="manual",
    )
    dispatch(request)
    mode = "paper" if settings.paper_trading else "LIVE"
    click.echo(f"{mode} order sent: buy {side.value} ${spend} at <= {limit} (request {request.request_id})")
    wait_seconds = settings.trade_ttl_seconds + OUTCOME_WAIT_MARGIN
    outcome_text = wait_for_outcome(request.request_id, request.trade_id, settings.paper_trading, wait_seconds)
    if outcome_text is None:
        raise click.ClickException(
            f"no outcome within {wait_seconds:.0f} s: are the risk, execute and persist workers running? "
            "(`pm-arb status`)"
        )
    click.echo(outcome_text)


def wait_for_outcome(request_id: str, trade_id: str, paper: bool, timeout: float) -> str | None:
    """Poll the trade table (and the risk decision) until the request has an outcome."""
    from sqlalchemy import select

    from pm_arb_tasks.db.models import RiskDecisionRow
    from pm_arb_tasks.db.session import session_scope
    from pm_arb_tasks.db.trades import trade_table

    table = trade_table("paper" if paper else "live")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            row = session.scalar(select(table).where(table.trade_id == trade_id))
            decision = session.scalar(select(RiskDecisionRow).where(RiskDecisionRow.request_id == request_id))
            if row is not None:
                return describe_trade(row)
            if decision is not None and not decision.approved:
                return f"rejected by risk: {decision.reason}"
        time.sleep(0.2)
    return None


def describe_trade(row: PaperTradeRow | LiveTradeRow) -> str:
    text = f"{row.status}: {row.filled_amount:.2f} shares"
    if row.fill_price is not None:
        text += f" @ {row.fill_price:.4f}, fee {row.fee:.4f}"
    if row.order_id:
        text += f", order {row.order_id}"
    if row.error_message:
        text += f" ({row.error_message})"
    return text


@cli.command()
@click.option("--write-env", is_flag=True, help="Also write them into the env file (mode 600).")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=".env", show_default=True)
def creds(write_env: bool, env_file: Path) -> None:
    """Derive the Polymarket API credentials from POLYMARKET_PRIVATE_KEY; printed masked."""
    from pm_arb_tasks.adapters.polymarket.live import derive_credentials
    from pm_arb_tasks.adapters.polymarket.live_client import VenueConfigError, VenueError
    from pm_arb_tasks.security import redact
    from pm_arb_tasks.settings import get_settings

    try:
        values = derive_credentials(get_settings())
    except (VenueConfigError, VenueError) as exc:
        raise click.ClickException(redact(str(exc))) from None
    for name, value in zip(ENV_NAMES, values, strict=True):
        click.echo(f"{name}={mask(value)}")
    if write_env:
        write_env_values(env_file, dict(zip(ENV_NAMES, values, strict=True)))
        click.echo(f"written to {env_file} (readable by you only)")
    else:
        click.echo("not written anywhere; run with --write-env to store them in .env")


def write_env_values(path: Path, values: dict[str, str]) -> None:
    """Replace or append NAME=value lines, atomically, keeping every other line as it was."""
    lines = path.read_text().splitlines() if path.exists() else []
    remaining = dict(values)
    out = []
    for line in lines:
        name = line.removeprefix("export ").split("=", 1)[0].strip()
        if name in remaining:
            out.append(f"{name}={remaining.pop(name)}")
        else:
            out.append(line)
    out.extend(f"{name}={value}" for name, value in remaining.items())
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".env.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(out) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@cli.command()
def check() -> None:
    """Validate configuration and credentials; report pUSD collateral and exchange allowances."""
    from pm_arb_tasks.adapters.polymarket.live import readiness
    from pm_arb_tasks.db.migrate import ensure_migrated
    from pm_arb_tasks.db.session import get_engine
    from pm_arb_tasks.settings import get_settings
    from pm_arb_tasks.state.redis_client import get_redis

    settings = get_settings()
    problems: list[str] = []
    click.echo(f"trading mode: {'paper' if settings.paper_trading else 'LIVE'}")
    for name, probe in (("redis", lambda: get_redis().ping()), ("database", lambda: ensure_migrated(get_engine()))):
        try:
            probe()
            click.echo(f"{name}: ok")
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    if not settings.polymarket_private_key.get_secret_value():
        click.echo("Polymarket: no POLYMARKET_PRIVATE_KEY (needed for live trading only)")
    else:
        report = readiness(settings)
        for fact in report.facts:
            click.echo(f"  {fact}")
        problems += report.problems
    for problem in problems:
        click.secho(f"MISSING: {problem}", fg="red", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("ready" + (" for live trading" if not settings.paper_trading else ""))

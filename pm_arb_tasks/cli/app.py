"""The `pm-arb` click group; command modules register onto it."""

from __future__ import annotations

import logging
import sys

import click


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """pm-arb: run, watch and steer the Polymarket oracle-lag pipeline."""
    from pm_arb_tasks.security import install_log_redaction

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
    install_log_redaction()


LIVE_CONFIRMATION = "I ACCEPT REAL MONEY"


def started_from_terminal() -> bool:
    """Someone is there to answer: CI, systemd and docker give no terminal on stdin."""
    return sys.stdin.isatty()


def confirm_live_if_interactive() -> None:
    """Going live from a terminal needs a typed confirmation (DESIGN.md invariant 8).

    Non-interactive starts (CI, systemd, docker) rely on PAPER_TRADING=false plus valid
    credentials alone; paper mode never asks.
    """
    from pm_arb_tasks.settings import get_settings

    if get_settings().paper_trading or not started_from_terminal():
        return
    click.secho("PAPER_TRADING=false: orders will be placed with real money.", fg="red", bold=True)
    typed = click.prompt(f"Type '{LIVE_CONFIRMATION}' to continue", default="", show_default=False)
    if typed.strip() != LIVE_CONFIRMATION:
        raise click.ClickException("live trading not confirmed; nothing started")

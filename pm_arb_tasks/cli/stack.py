"""Running and steering the stack: up, stop, resume, db upgrade, sim."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from pm_arb_tasks.cli.app import cli, confirm_live_if_interactive

SIM_PORT = 8900
SIM_URL_SETTINGS = (
    "GAMMA_API_URL",
    "CLOB_API_URL",
    "BINANCE_API_URL",
    "COINBASE_API_URL",
    "COINGECKO_API_URL",
    "PUSHOVER_API_URL",
)
SIM_PUSHOVER_USER_KEY = "usimulatorplaceholderuserkey00"  # 30 characters, the shape of a real one
SIM_PUSHOVER_API_TOKEN = "asimulatorplaceholdertoken0000"


def read_procfile(path: Path) -> dict[str, str]:
    """Procfile lines `name: command`, in order; blank lines and comments skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise click.ClickException(f"{path}:{number}: expected 'name: command'")
        processes[name.strip()] = command.strip()
    return processes


def sim_environment(port: int) -> dict[str, str]:
    """Every upstream URL at the simulator, and always placeholder Pushover keys: the simulator
    refuses empty ones (alerts would never reach its /sim/log), and an operator's real keys from
    the environment or `.env` must never be sent anywhere but Pushover."""
    base = f"http://127.0.0.1:{port}"
    return {
        **dict.fromkeys(SIM_URL_SETTINGS, base),
        "PUSHOVER_USER_KEY": SIM_PUSHOVER_USER_KEY,
        "PUSHOVER_API_TOKEN": SIM_PUSHOVER_API_TOKEN,
    }


def stack_environment(base: Mapping[str, str], sim_port: int | None = None) -> dict[str, str]:
    """The environment of every process `up` starts. This interpreter's bin directory comes first
    on PATH, so the Procfile's `celery` and `pm-arb` are this virtualenv's even when the caller never
    activated it (`make run` calls `.venv/bin/pm-arb`); `sim_port` points the stack at the simulator."""
    env = dict(base)
    env["PATH"] = os.pathsep.join(filter(None, (str(Path(sys.executable).parent), env.get("PATH"))))
    if sim_port is not None:
        env.update(sim_environment(sim_port))
    return env


@cli.command()
@click.option("--sim", "use_sim", is_flag=True, help="Also run the bundled simulator; every upstream URL points at it.")
@click.option("--sim-port", default=SIM_PORT, show_default=True)
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), default="Procfile")
@click.option("--only", multiple=True, help="Start only these Procfile processes (repeatable).")
def up(use_sim: bool, sim_port: int, procfile: Path, only: tuple[str, ...]) -> None:
    """Run the whole stack in the foreground with prefixed output; Ctrl-C stops it all."""
    from honcho.manager import Manager

    from pm_arb_tasks.db.migrate import ensure_migrated
    from pm_arb_tasks.db.session import get_engine

    confirm_live_if_interactive()
    ensure_migrated(get_engine())
    processes = read_procfile(procfile)
    unknown = set(only) - set(processes)
    if unknown:
        raise click.ClickException(f"not in {procfile}: {', '.join(sorted(unknown))}")
    env = stack_environment(os.environ, sim_port if use_sim else None)
    manager = Manager()
    if use_sim:
        manager.add_process("sim", f"{shlex.quote(sys.executable)} -m pm_arb_tasks.sim --port {sim_port}", env=env)
    for name, command in processes.items():
        if not only or name in only:
            manager.add_process(name, command, env=env)
    manager.loop()
    sys.exit(manager.returncode)


@cli.command()
@click.option("--reason", default="operator stop", show_default=True)
@click.option("--cancel-open", is_flag=True, help="Also cancel resting orders at the venue (live mode).")
def stop(reason: str, cancel_open: bool) -> None:
    """Kill switch: durable halt flag, executor consumer cancelled, critical alert."""
    from pm_arb_tasks.services import kill_switch
    from pm_arb_tasks.settings import get_settings

    report = kill_switch.stop(reason)
    click.echo(f"halted. execute consumers cancelled on: {', '.join(report.workers) or 'no running executor'}")
    if cancel_open:
        if get_settings().paper_trading:
            click.echo("paper mode: no resting orders to cancel")
        else:
            from pm_arb_tasks.adapters.polymarket.live import cancel_open_orders
            from pm_arb_tasks.adapters.polymarket.live_client import VenueConfigError, VenueError

            try:
                click.echo(f"cancelled {cancel_open_orders()} resting order(s) at the venue")
            except (VenueError, VenueConfigError) as exc:
                raise click.ClickException(f"halted, but cancelling resting orders failed: {exc}") from None


@cli.command()
@click.option("--reason", default="operator resume", show_default=True)
def resume(reason: str) -> None:
    """Clear the halt flag and re-add the execute consumer; queued stale requests stay expired."""
    from pm_arb_tasks.services import kill_switch

    report = kill_switch.resume(reason)
    click.echo(f"resumed. execute consumers added on: {', '.join(report.workers) or 'no running executor'}")


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from pm_arb_tasks.db.migrate import upgrade
    from pm_arb_tasks.db.session import get_engine

    engine = get_engine()
    upgrade(str(engine.url.render_as_string(hide_password=False)), revision)
    click.echo(f"database {engine.url.render_as_string(hide_password=True)} at {revision}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=SIM_PORT, show_default=True)
@click.option("--seed", default=1, show_default=True)
def sim(host: str, port: int, seed: int) -> None:
    """Serve the venue simulator (Binance, Coinbase, CoinGecko, Gamma, CLOB, Pushover)."""
    from pm_arb_tasks.sim import serve

    serve(host=host, port=port, seed=seed)

"""`pm-arb`: the operator's command line. Each module adds its commands to the one group."""

from __future__ import annotations

import importlib
import sys

from pydantic import ValidationError

from pm_arb_tasks.cli.app import cli

COMMAND_MODULES = ("stack", "venue", "operator")


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"pm_arb_tasks.cli.{name}")


def main() -> None:
    """Console entry point: configuration errors print as one clear message, never a traceback."""
    try:
        _load_commands()
        cli(standalone_mode=True)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, err['loc'])).upper() or 'settings'}: {err['msg']}" for err in exc.errors()]
        sys.exit("configuration error:\n" + "\n".join(lines))

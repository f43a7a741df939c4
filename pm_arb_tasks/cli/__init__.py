"""`pm-arb`: the operator's command line. Each module adds its commands to the one group."""

from __future__ import annotations

import importlib
import sys

from pydantic import ValidationError

from pm_arb_tasks.cli.app import cli
from pm_arb_tasks.settings import Settings, describe_error

COMMAND_MODULES = ("stack", "venue", "operator")


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"pm_arb_tasks.cli.{name}")


def main() -> None:
    """Console entry point: configuration errors print as one clear line naming the variable (the
    wording every Celery process uses too), never a traceback; any other error stays a bug."""
    try:
        _load_commands()
        cli(standalone_mode=True)
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        sys.exit(describe_error(exc))

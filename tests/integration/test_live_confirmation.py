"""Invariant 8's human confirmation: `pm-arb up` started from a terminal in live mode starts nothing
until the operator types the confirmation; paper mode never asks. honcho's Manager is replaced by a
recorder, so "started" means exactly what `up` would have handed to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import pm_arb_tasks.cli.stack  # noqa: F401 - registers `up` on the group
from pm_arb_tasks.cli import app as cli_app
from pm_arb_tasks.cli.app import LIVE_CONFIRMATION, cli
from pm_arb_tasks.settings import get_settings
from tests.support.env import fresh_database

pytestmark = pytest.mark.integration
PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"
KEY = "0x" + "5c" * 32


class RecordingManager:
    """Stands in for honcho's Manager: records what would be started, starts nothing."""

    launched: list[str] = []

    def __init__(self) -> None:
        self.names: list[str] = []
        self.returncode = 0

    def add_process(self, name: str, cmd: str, **_: object) -> None:
        self.names.append(name)

    def loop(self) -> None:
        RecordingManager.launched += self.names


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A terminal on stdin, a migrated SQLite database, and the recorder in place of honcho."""
    RecordingManager.launched = []
    monkeypatch.setattr(cli_app, "started_from_terminal", lambda: True)
    monkeypatch.setattr("honcho.manager.Manager", RecordingManager)
    with fresh_database("sqlite", "confirm", str(tmp_path)) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPER_TRADING", "false")
    monkeypatch.setenv("POLYMARKET_PRIVATE_KEY", KEY)
    get_settings.cache_clear()


def up(typed: str = "") -> object:
    return CliRunner().invoke(cli, ["up", "--procfile", str(PROCFILE), "--only", "beat"], input=typed)


DECLINED = "live trading not confirmed; nothing started"


@pytest.mark.parametrize(
    ("typed", "answer"),
    [("\n", DECLINED), ("yes\n", DECLINED), (LIVE_CONFIRMATION.lower() + "\n", DECLINED), ("", "Aborted!")],
    ids=["enter", "yes", "lower-case", "ctrl-d"],
)
def test_live_mode_declined_at_the_terminal_starts_nothing(
    terminal: None, monkeypatch: pytest.MonkeyPatch, typed: str, answer: str
) -> None:
    live(monkeypatch)
    result = up(typed)
    assert result.exit_code == 1, result.output
    assert "real money" in result.output and answer in result.output
    assert RecordingManager.launched == []


def test_live_mode_confirmed_at_the_terminal_starts_the_stack(terminal: None, monkeypatch: pytest.MonkeyPatch) -> None:
    live(monkeypatch)
    result = up(LIVE_CONFIRMATION + "\n")
    assert result.exit_code == 0, result.output
    assert RecordingManager.launched == ["beat"]


def test_paper_mode_never_asks(terminal: None) -> None:
    assert get_settings().paper_trading
    result = up()
    assert result.exit_code == 0, result.output
    assert "Type" not in result.output and "real money" not in result.output
    assert RecordingManager.launched == ["beat"]

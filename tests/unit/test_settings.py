"""Settings validation: clear errors naming the variable, never echoing a secret."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from pm_arb_tasks.settings import Settings, describe_error, get_settings, settings_or_exit

KEY = "0x" + "ab" * 32


def validation_error(**env: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **env)
    return info.value


def error_text(**env: object) -> str:
    """What the operator reads: pm-arb and every Celery process print `describe_error`."""
    return describe_error(validation_error(**env))


def test_defaults_are_paper_and_design_values() -> None:
    s = Settings(_env_file=None)
    assert s.paper_trading is True
    assert s.symbols == ("BTC", "ETH", "SOL", "XRP")
    assert (s.initial_bankroll, s.max_trade_size, s.min_edge_pct) == (200, 20, 2)
    assert (s.position_limit_pct, s.daily_loss_limit_pct, s.drawdown_limit_pct) == (10, 10, 20)
    assert (s.oracle_poll_seconds, s.market_poll_seconds, s.book_poll_seconds, s.trade_ttl_seconds) == (1, 30, 2, 5)
    assert s.broker_visibility_timeout_seconds == 30
    assert str(s.min_edge) == "0.02"


def test_symbols_accept_bare_list_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOLS", " btc, Eth ")
    assert Settings(_env_file=None).symbols == ("BTC", "ETH")


@pytest.mark.parametrize("bad", ["BTCUSDT", "BTC-USD", "BTC,DOGE"])
def test_venue_formatted_or_unknown_symbol_is_rejected_by_name(bad: str) -> None:
    text = error_text(symbols=bad)
    assert text.startswith("configuration error: SYMBOLS takes bare symbols"), text
    assert "\n" not in text


def test_no_symbol_at_all_is_rejected_by_name() -> None:
    assert error_text(symbols="").startswith("configuration error: SYMBOLS must name at least one of")


@pytest.mark.parametrize("field", ["position_limit_pct", "daily_loss_limit_pct", "drawdown_limit_pct"])
@pytest.mark.parametrize("value", ["0", "-5", "150"])
def test_percent_out_of_range(field: str, value: str) -> None:
    assert f"{field.upper()}: Input should be" in error_text(**{field: value})


def test_every_bad_variable_is_named_on_one_line() -> None:
    text = error_text(symbols="BTCUSDT", position_limit_pct="0")
    assert "SYMBOLS takes bare symbols" in text and "; POSITION_LIMIT_PCT: " in text and "\n" not in text


def test_entry_points_exit_with_the_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOLS", "BTCUSDT")
    get_settings.cache_clear()  # a failed load is never cached: nothing is left for later tests
    with pytest.raises(SystemExit) as info:
        settings_or_exit()
    assert str(info.value.code).startswith("configuration error: SYMBOLS takes bare symbols")


def test_pm_arb_prints_the_same_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from pm_arb_tasks.cli import main

    monkeypatch.setenv("SYMBOLS", "BTCUSDT")
    monkeypatch.setattr(sys, "argv", ["pm-arb", "flower"])
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as info:
        main()
    assert str(info.value.code).startswith("configuration error: SYMBOLS takes bare symbols")


def test_live_without_key_fails_fast_naming_the_variable() -> None:
    assert "POLYMARKET_PRIVATE_KEY" in error_text(paper_trading=False)


@pytest.mark.parametrize("bad_key", ["0x1234", "ab" * 32, "0x" + "zz" * 32, "0x" + "ab" * 33])
def test_malformed_key_is_rejected_without_echoing_it(bad_key: str) -> None:
    exc = validation_error(paper_trading=False, polymarket_private_key=bad_key)
    for text in (describe_error(exc), str(exc)):  # what is printed, and what a log line would show
        assert "POLYMARKET_PRIVATE_KEY" in text
        assert bad_key not in text
        assert bad_key[2:] not in text


def test_secrets_are_masked_in_every_repr() -> None:
    s = Settings(_env_file=None, paper_trading=False, polymarket_private_key=KEY, polymarket_secret="s3cr3t-value")
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert KEY not in text and KEY[2:] not in text and "s3cr3t-value" not in text


def test_flower_auth_must_be_user_colon_password() -> None:
    assert "FLOWER_BASIC_AUTH" in error_text(flower_basic_auth="justapassword")


@pytest.mark.parametrize("bad", ["0", "-5", "soon"])
def test_visibility_timeout_must_be_a_positive_number_of_seconds(bad: str) -> None:
    assert "broker_visibility_timeout_seconds" in error_text(broker_visibility_timeout_seconds=bad).lower()


def test_visibility_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_VISIBILITY_TIMEOUT_SECONDS", "45")
    assert Settings(_env_file=None).broker_visibility_timeout_seconds == 45

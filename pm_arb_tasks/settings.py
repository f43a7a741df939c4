"""Configuration from the environment (and `.env`), with the names DESIGN.md §4 fixes.

Secrets are `SecretStr` so that no repr, log line or exception text can show them; live mode
is refused at load time unless the private key is well formed, so a misconfigured live worker
dies at start-up instead of at its first order.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SUPPORTED_SYMBOLS = ("BTC", "ETH", "SOL", "XRP")
_PRIVATE_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

Percent = Annotated[Decimal, Field(gt=0, le=100)]


class Settings(BaseSettings):
    """Every knob of the system; defaults are the safe ones (paper trading, small sizes)."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    paper_trading: bool = True
    redis_url: str = "redis://localhost:6379/0"
    database_url: str = "sqlite:///pm_arb.db"

    gamma_api_url: str = "https://gamma-api.polymarket.com"
    clob_api_url: str = "https://clob.polymarket.com"
    binance_api_url: str = "https://api.binance.com"
    coinbase_api_url: str = "https://api.exchange.coinbase.com"
    coingecko_api_url: str = "https://api.coingecko.com"
    pushover_api_url: str = "https://api.pushover.net"
    pushover_user_key: SecretStr = SecretStr("")
    pushover_api_token: SecretStr = SecretStr("")

    polymarket_private_key: SecretStr = SecretStr("")
    polymarket_api_key: SecretStr = SecretStr("")
    polymarket_secret: SecretStr = SecretStr("")
    polymarket_passphrase: SecretStr = SecretStr("")
    polymarket_funder: str = ""
    polymarket_signature_type: int = Field(default=0, ge=0, le=3)
    polymarket_chain_id: int = 137

    symbols: Annotated[tuple[str, ...], NoDecode] = SUPPORTED_SYMBOLS

    initial_bankroll: Decimal = Field(default=Decimal("200"), gt=0)
    max_trade_size: Decimal = Field(default=Decimal("20"), gt=0)
    min_edge_pct: Decimal = Field(default=Decimal("2.0"), ge=0, le=100)
    position_limit_pct: Percent = Decimal("10")
    daily_loss_limit_pct: Percent = Decimal("10")
    drawdown_limit_pct: Percent = Decimal("20")
    total_exposure_pct: Percent = Decimal("50")  # all open reservations and positions together
    sizing_strategy: Literal["fixed", "kelly", "half_kelly"] = "fixed"
    order_type: Literal["FOK", "FAK"] = "FOK"
    market_cooldown_seconds: float = Field(default=60, ge=0)
    # Volatility for fair value: EWMA of oracle log returns, annualised, clamped to [floor, cap].
    vol_floor: Decimal = Field(default=Decimal("0.30"), gt=0)
    vol_cap: Decimal = Field(default=Decimal("3.0"), gt=0)
    vol_halflife_seconds: float = Field(default=600, gt=0)
    # A filtered opportunity is logged at most once per (market, outcome, reason) per this period.
    opportunity_log_seconds: float = Field(default=60, ge=0)

    oracle_poll_seconds: float = Field(default=1, gt=0)
    market_poll_seconds: float = Field(default=30, gt=0)
    book_poll_seconds: float = Field(default=2, gt=0)
    trade_ttl_seconds: float = Field(default=5, gt=0)
    # How long Redis keeps a delivered, unacknowledged message before giving it to another
    # worker: a killed worker's order comes back after this. Workers refuse a value that a
    # late-acked task's time limit or a retry delay could outlast (celery_app.redelivery_problems).
    broker_visibility_timeout_seconds: int = Field(default=30, ge=1)

    flower_basic_auth: SecretStr = SecretStr("")
    flower_port: int = Field(default=5555, ge=1, le=65535)
    # Tasks Flower keeps in memory. Its own default (100,000) grows to several hundred MB once a
    # day of polls has gone by; 3,000 is about half an hour of a quiet stack.
    flower_max_tasks: int = Field(default=3000, ge=100)

    @field_validator("symbols", mode="before")
    @classmethod
    def _bare_symbols(cls, value: object) -> tuple[str, ...]:
        """Accept "BTC,ETH" or a list; refuse venue formats such as "BTCUSDT" by name."""
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
        symbols = tuple(str(item).strip().upper() for item in items if str(item).strip())
        if not symbols:
            raise ValueError("SYMBOLS must name at least one of " + ",".join(SUPPORTED_SYMBOLS))
        unknown = [s for s in symbols if s not in SUPPORTED_SYMBOLS]
        if unknown:
            raise ValueError(
                f"SYMBOLS takes bare symbols ({','.join(SUPPORTED_SYMBOLS)}); "
                f"got {','.join(unknown)} (write BTC, not BTCUSDT or BTC-USD)"
            )
        return symbols

    @field_validator("polymarket_private_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        if raw and not _PRIVATE_KEY.match(raw):
            raise ValueError("POLYMARKET_PRIVATE_KEY must be 0x followed by 64 hex characters")
        return SecretStr(raw)

    @field_validator("polymarket_funder")
    @classmethod
    def _funder_shape(cls, value: str) -> str:
        value = value.strip()
        if value and not _ADDRESS.match(value):
            raise ValueError("POLYMARKET_FUNDER must be a 0x-prefixed 40-hex-character address")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _basic_auth_shape(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw and (":" not in raw or raw.startswith(":") or raw.endswith(":")):
            raise ValueError("FLOWER_BASIC_AUTH must be user:password")
        return value

    @model_validator(mode="after")
    def _live_needs_key(self) -> Settings:
        if not self.paper_trading and not self.polymarket_private_key.get_secret_value():
            raise ValueError("PAPER_TRADING=false needs POLYMARKET_PRIVATE_KEY (0x + 64 hex)")
        if self.max_trade_size > self.initial_bankroll:
            raise ValueError("MAX_TRADE_SIZE cannot exceed INITIAL_BANKROLL")
        return self

    @property
    def min_edge(self) -> Decimal:
        """MIN_EDGE_PCT as a price-unit threshold (2.0 % -> 0.02)."""
        return self.min_edge_pct / 100

    @property
    def trading_mode(self) -> Literal["paper", "live"]:
        """The one place paper vs live is decided; also names the trade table it writes."""
        return "paper" if self.paper_trading else "live"

    @property
    def has_l2_creds(self) -> bool:
        return all(
            s.get_secret_value()
            for s in (self.polymarket_api_key, self.polymarket_secret, self.polymarket_passphrase)
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; tests call `get_settings.cache_clear()`."""
    return Settings()


def describe_error(exc: ValidationError) -> str:
    """One line naming each bad variable as the operator writes it (POSITION_LIMIT_PCT, not
    position_limit_pct), never its value: the value may be a secret."""
    problems = []
    for err in exc.errors():
        name, text = ".".join(map(str, err["loc"])).upper(), err["msg"].removeprefix("Value error, ")
        problems.append(text if not name or text.startswith(name) else f"{name}: {text}")
    return "configuration error: " + "; ".join(problems)


def settings_or_exit() -> Settings:
    """`get_settings()` for a process's entry point (pm-arb, every Celery process): bad configuration
    ends the process with `describe_error`'s line and a non-zero status, not a traceback."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise SystemExit(describe_error(exc)) from None

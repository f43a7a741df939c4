"""Keeping secrets out of logs and messages (DESIGN.md invariant 7).

Secrets are `SecretStr` in settings, so a repr never shows them; this module is the second line:
any text that leaves the process through logging or an error message is passed through `redact`,
which replaces every configured secret value (and the private key without its 0x) with `***`,
whatever its letter case (a hex key printed upper-case is still the key).

Not every secret is configured: the Polymarket L2 credentials are derived from the private key at
run time when the environment has none (`create_or_derive_api_key`). Whoever obtains such a value
hands it to `register_secrets` at once, so it is masked exactly like a configured one from then on,
in this process and in the pool children forked after it.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

from pm_arb_tasks.settings import Settings, get_settings

MASK = "***"
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words
_runtime_secrets: set[str] = set()  # registered at run time (derived credentials); never shrinks
_runtime_lock = threading.Lock()


def register_secrets(*values: str) -> None:
    """Mask these values from now on too: secrets that exist only at run time, which no setting
    holds and the redaction would otherwise not know (the L2 credentials derived from the key)."""
    with _runtime_lock:
        _runtime_secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LEN)


def secret_values(settings: Settings) -> list[str]:
    """Every value to mask, longest first (so a secret containing another is masked whole)."""
    values = [
        s.get_secret_value()
        for s in (
            settings.polymarket_private_key,
            settings.polymarket_api_key,
            settings.polymarket_secret,
            settings.polymarket_passphrase,
            settings.pushover_user_key,
            settings.pushover_api_token,
            settings.flower_basic_auth,
        )
    ]
    key = settings.polymarket_private_key.get_secret_value()
    if key.startswith("0x"):
        values.append(key[2:])
    with _runtime_lock:
        values.extend(_runtime_secrets)
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


@lru_cache(maxsize=16)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive alternation of the values, longest first; built once per set (every
    log record passes through `redact`)."""
    return re.compile("|".join(map(re.escape, values)), re.IGNORECASE) if values else None


def redact(text: str, extra: list[str] | None = None) -> str:
    values = {*secret_values(get_settings()), *(v for v in extra or () if v)}
    pattern = _pattern(tuple(sorted(values, key=lambda v: (-len(v), v))))
    return pattern.sub(MASK, text) if pattern else text


class RedactingFilter(logging.Filter):
    """Masks secrets in every record, whatever the library that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not drop the record
            return True
        redacted = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction() -> None:
    """Attach the filter to every handler of the root logger (Celery's included)."""
    flt = RedactingFilter()
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)

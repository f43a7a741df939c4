"""Keeping secrets out of logs and messages (DESIGN.md invariant 7).

Secrets are `SecretStr` in settings, so a repr never shows them; this module is the second line:
any text that leaves the process through logging or an error message is passed through `redact`,
which replaces every configured secret value (and the private key without its 0x) with `***`.
"""

from __future__ import annotations

import logging

from pm_arb_tasks.settings import Settings, get_settings

MASK = "***"
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words


def secret_values(settings: Settings) -> list[str]:
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
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def redact(text: str, extra: list[str] | None = None) -> str:
    for value in [*secret_values(get_settings()), *(extra or [])]:
        if value and value in text:
            text = text.replace(value, MASK)
    return text


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

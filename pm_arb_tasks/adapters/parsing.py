"""Defensive conversions shared by every parser at the edge.

Upstream payloads are untrusted: a price may arrive as None, "", "NaN", "Infinity", a bool, a
nested object or a number too large for a float. These helpers return None for anything that
is not a usable value, so a parser can drop the item with one log line and carry on
(DESIGN.md invariant 6). They never raise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_TEXT = 64  # longer "numbers" are garbage, and Decimal parsing of huge strings is slow
MAX_MAGNITUDE = 18  # |exponent| beyond this is no price, size or tick ("1e999" is finite but absurd)


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number or numeric string; None otherwise (bools refused)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if not text or len(text) > MAX_TEXT:
        return None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or (number and abs(number.adjusted()) > MAX_MAGNITUDE):
        return None
    return number


def to_positive(value: Any) -> Decimal | None:
    number = to_decimal(value)
    return number if number is not None and number > 0 else None


def to_bool(value: Any) -> bool | None:
    """JSON booleans, and the strings "true"/"false" some endpoints send; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def to_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string ("2025-12-31T17:15:00Z"); None otherwise."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def json_list(value: Any) -> list[Any] | None:
    """Gamma sends lists as JSON-encoded strings ('["Up", "Down"]'); accept either form."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def json_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def short(value: Any, limit: int = 120) -> str:
    """A bounded repr for log lines: the context without flooding the log."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

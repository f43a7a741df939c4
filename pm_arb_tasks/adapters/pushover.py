"""Pushover's message API (`POST /1/messages.json`), translated to a `Delivery` at the edge.

Callers get a `Delivery`, never an exception: alert delivery is best effort and must not take a
worker down. The shared session (adapters/http.py) gives timeouts; the retry policy is ours,
because the shared transport deliberately never retries 429 or a POST: 429, 5xx and transport
errors are retried here with capped exponential backoff, counting every attempt. A message is a
notification, so a rare duplicate after an ambiguous 5xx is acceptable; a lost one is not.
The token and user key travel only in the form body; every error text is passed through
`redact` with both of them before it is logged or stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from pm_arb_tasks.adapters.http import make_session
from pm_arb_tasks.security import redact

log = logging.getLogger(__name__)

MESSAGES_PATH = "/1/messages.json"
PRIORITY_MIN, PRIORITY_MAX = -2, 2
EMERGENCY = 2
EMERGENCY_RETRY_SECONDS = 60  # Pushover re-notifies this often until acknowledged (min 30)
EMERGENCY_EXPIRE_SECONDS = 3600  # ...for at most this long (max 10800)
TITLE_LIMIT, MESSAGE_LIMIT = 250, 1024  # Pushover rejects longer fields
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.5  # 0.5 s, 1 s, 2 s between attempts
BACKOFF_MAX_SECONDS = 4.0


@dataclass(frozen=True)
class PushoverMessage:
    title: str
    message: str
    priority: int = 0

    def form(self) -> dict[str, str]:
        """Form fields without credentials; emergency priority carries the retry/expire it needs."""
        priority = min(max(self.priority, PRIORITY_MIN), PRIORITY_MAX)
        fields = {
            "title": _truncate(self.title, TITLE_LIMIT),
            "message": _truncate(self.message or "(empty)", MESSAGE_LIMIT),
            "priority": str(priority),
        }
        if priority == EMERGENCY:
            fields["retry"] = str(EMERGENCY_RETRY_SECONDS)
            fields["expire"] = str(EMERGENCY_EXPIRE_SECONDS)
        return fields


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    request_id: str | None = None  # Pushover's receipt for the request
    error: str | None = None


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retryable(status: int | None) -> bool:
    """Transport errors (None), rate limiting and server errors may pass; a 4xx will not."""
    return status is None or status == 429 or status >= 500


def backoff(attempt: int, base: float = BACKOFF_SECONDS) -> float:
    return min(base * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


class PushoverClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        user: str,
        *,
        session: requests.Session | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._url = base_url.rstrip("/") + MESSAGES_PATH
        self._credentials = {"token": token, "user": user}
        self._session = session or make_session(retries=0, pool_size=2)  # retries are ours
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the credentials
        return f"PushoverClient({self._url!r})"

    def send(self, message: PushoverMessage) -> Delivery:
        form = {**self._credentials, **message.form()}
        error = ""
        for attempt in range(1, self._max_attempts + 1):
            status, request_id, error = self._post(form)
            if status == 200 and request_id is not None:
                return Delivery(True, attempt, request_id=request_id or None)
            if not retryable(status):
                return self._failed(attempt, error)
            if attempt < self._max_attempts:
                log.info("pushover attempt %d failed (%s), retrying", attempt, self._redact(error))
                self._sleep(backoff(attempt, self._backoff_base))
        return self._failed(self._max_attempts, error)

    def _post(self, form: dict[str, str]) -> tuple[int | None, str | None, str]:
        """(HTTP status or None, Pushover request id when accepted, error text)."""
        try:
            response = self._session.post(self._url, data=form)
        except requests.RequestException as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        body = _json(response)
        if response.status_code == 200 and type(body.get("status")) is int and body.get("status") == 1:
            return 200, str(body.get("request") or ""), ""
        errors = body.get("errors")
        detail = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else response.text[:200]
        return response.status_code, None, f"HTTP {response.status_code}: {detail}"

    def _redact(self, text: str) -> str:
        return redact(text, extra=list(self._credentials.values()))

    def _failed(self, attempts: int, error: str) -> Delivery:
        error = self._redact(error)
        log.warning("pushover delivery failed after %d attempt(s): %s", attempts, error)
        return Delivery(False, attempts, error=error)


def _json(response: requests.Response) -> dict:
    """Pushover answers JSON objects; anything else counts as an error reply, never a crash."""
    try:
        body = response.json()
    except ValueError:  # requests' JSONDecodeError is a ValueError
        return {}
    return body if isinstance(body, dict) else {}

"""One HTTP session factory for every upstream (oracles, Gamma, CLOB book reads, Pushover).

Why one place: retries, timeouts and error translation must be identical everywhere, or one
adapter will hang a worker on a dead host while another hammers a rate-limited one.

- `make_session()` returns a keep-alive `requests.Session` whose every request has a timeout
  (connect, read) unless the caller passes one, which takes proxy and CA-bundle settings from the
  environment once rather than per call, and whose transport retries *idempotent*
  methods only (GET by default) on connect/read errors and on 502/503/504, with a short
  exponential backoff. 429 is never retried here: the caller decides (the oracle fallback
  backs off per provider, honouring Retry-After). A POST is retried only when the caller
  lists it in `retry_methods` because the endpoint is a read (CLOB `POST /books`); an order
  post must never be.
- `request_json()` performs one call and returns the decoded JSON, or raises `UpstreamError`
  carrying the HTTP status (None for transport errors and undecodable bodies) and the
  Retry-After delay in seconds when the server sent one. URLs in the error are stripped of
  their query string, so a token passed as a parameter can never reach a log line.

Usage:
    session = make_session()
    try:
        payload = request_json(session, "GET", f"{base}/api/v3/ticker/price", params=...)
    except UpstreamError as exc:
        ...  # exc.status, exc.retry_after, exc.rate_limited, exc.blocked
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

DEFAULT_TIMEOUT = (3.05, 5.0)  # (connect, read) seconds
RETRY_STATUSES = (502, 503, 504)
BLOCKED_STATUSES = (403, 451)  # geo-block / forbidden: retrying will not help
USER_AGENT = "pm-arb-tasks/0.1"


class UpstreamError(Exception):
    """An upstream call that produced no usable payload.

    `status` is the HTTP status, or None when the call failed below HTTP (connection refused,
    timeout) or the body was not JSON. `retry_after` is the server's Retry-After in seconds.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, url: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.url = url

    @property
    def rate_limited(self) -> bool:
        return self.status == 429

    @property
    def blocked(self) -> bool:
        return self.status in BLOCKED_STATUSES

    def __str__(self) -> str:
        parts = [super().__str__()]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}s")
        if self.url:
            parts.append(f"url={self.url}")
        return " ".join(parts)


class _TimeoutSession(requests.Session):
    """A Session that never waits forever (a default timeout on every request) and reads the
    environment once instead of on every call.

    With `trust_env` on, requests looks up the proxy variables, NO_PROXY, the CA-bundle variables
    and ~/.netrc again for every request (hundreds of `os.environ` reads per oracle poll). A
    worker's environment does not change while it runs, so: the CA bundle is read here, an
    operator's proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) is chosen for each origin on
    its first call exactly as requests would choose it, and ~/.netrc is never consulted (no
    credential reaches an upstream except from our settings).
    """

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.trust_env = False
        self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxy_env = bool(urllib.request.getproxies())
        self._proxies: dict[str, dict[str, str]] = {}  # origin -> the proxies requests would use for it

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        if self._proxy_env:
            kwargs.setdefault("proxies", self._proxies_for(url if isinstance(url, str) else url.decode()))
        return super().request(method, url, *args, **kwargs)

    def _proxies_for(self, url: str) -> dict[str, str]:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            self._proxies[origin] = get_environ_proxies(url)
        return self._proxies[origin]


def make_session(
    *,
    retries: int = 2,
    backoff: float = 0.2,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retry_methods: Iterable[str] = ("GET",),
    pool_size: int = 10,
    headers: dict[str, str] | None = None,
) -> requests.Session:
    """A keep-alive session with timeouts and transport retries for idempotent reads only."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset(m.upper() for m in retry_methods),
        backoff_factor=backoff,
        backoff_max=2.0,
        respect_retry_after_header=False,
        raise_on_status=False,  # hand the last 5xx back so it becomes an UpstreamError with its status
        raise_on_redirect=False,
    )
    session = _TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})})
    return session


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date; None when absent or garbage."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _bare(url: str) -> str:
    return url.split("?", 1)[0]


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    data: dict[str, Any] | None = None,
    timeout: tuple[float, float] | None = None,
) -> Any:
    """One call; the decoded JSON body of a 2xx reply, else `UpstreamError`."""
    kwargs: dict[str, Any] = {"params": params}
    if json_body is not None:
        kwargs["json"] = json_body
    if data is not None:
        kwargs["data"] = data
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise UpstreamError(f"{type(exc).__name__}", url=_bare(url)) from exc
    if not 200 <= response.status_code < 300:
        raise UpstreamError(
            f"HTTP {response.status_code}: {response.text[:200]!r}",
            status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            url=_bare(url),
        )
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamError(
            f"undecodable body ({len(response.content)} bytes): {response.content[:80]!r}", url=_bare(url)
        ) from exc

"""L2 credentials derived from the private key at run time are masked like configured ones.

No setting holds them, so the redaction (which masks what settings hold) knew nothing of them
until `ClobSession.rederive` registered them: before that, an SDK error or a careless log line
in a worker that derives its credentials would have written the API secret in clear.
"""

from __future__ import annotations

import logging

import pytest
from eth_account import Account
from py_clob_client_v2.clob_types import ApiCreds
from pydantic import SecretStr

from pm_arb_tasks import security
from pm_arb_tasks.adapters.polymarket.live_client import ClobSession
from pm_arb_tasks.security import MASK, RedactingFilter, redact
from pm_arb_tasks.settings import Settings

DERIVED = ApiCreds(
    api_key="6f0c2a47-2b43-4c55-9a0e-derivedkey01",
    api_secret="ZGVyaXZlZC1zZWNyZXQtZGVyaXZlZC1zZWNyZXQ=",
    api_passphrase="d3r1v3dpa55phrase0123456789abcdef",
)


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> ClobSession:
    """A session without configured credentials whose CLOB answers the derivation offline, and a
    registry of run-time secrets of this test's own (the process-wide one must not leak into others)."""
    monkeypatch.setattr(security, "_runtime_secrets", set())
    key = "0x" + bytes(Account.create().key).hex()
    settings = Settings(_env_file=None, polymarket_private_key=SecretStr(key), clob_api_url="http://127.0.0.1:9")
    monkeypatch.setattr(security, "get_settings", lambda: settings)
    session = ClobSession(settings)
    assert not session.has_creds
    monkeypatch.setattr(session.client, "create_or_derive_api_key", lambda: DERIVED)
    return session


def test_derived_credentials_are_masked_as_soon_as_they_are_derived(session: ClobSession) -> None:
    text = f"reply {DERIVED.api_key} {DERIVED.api_secret} {DERIVED.api_passphrase}"
    assert redact(text) == text  # unknown to the redaction before the derivation

    assert session.rederive() == DERIVED

    assert redact(text) == f"reply {MASK} {MASK} {MASK}"


def test_the_log_filter_masks_derived_credentials(session: ClobSession, caplog: pytest.LogCaptureFixture) -> None:
    session.ensure_creds()
    caplog.handler.addFilter(RedactingFilter())
    logging.getLogger("py_clob_client_v2").error("auth failed for %s / %s", DERIVED.api_secret, DERIVED.api_passphrase)
    assert caplog.messages == [f"auth failed for {MASK} / {MASK}"]


def test_a_secret_is_masked_whatever_its_letter_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hex key printed upper-case (an SDK, a checksum helper) is still the key."""
    key = "0x" + "ab12" * 16
    settings = Settings(_env_file=None, polymarket_private_key=SecretStr(key))
    monkeypatch.setattr(security, "get_settings", lambda: settings)
    text = f"signing with {key.upper()} ({key[2:].upper()}), then {key}"
    assert redact(text) == f"signing with {MASK} ({MASK}), then {MASK}"
    assert redact("nothing secret here") == "nothing secret here"

"""Errors through the one HTTP layer: retries of 429/5xx with Retry-After, no retry of 4xx, every error shape."""

from __future__ import annotations

import time

import pytest
from conftest import authorize, hook

from airflow_provider_fbmkto.exceptions import ApiError, AuthError, RateLimited
from airflow_provider_fbmkto.http import RetryPolicy
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.freshbooks.routes import CallRecord

CLIENTS_PATH = "/accounting/account/ACME01/users/clients"


def _calls(emu: FreshBooksEmulator, path: str = CLIENTS_PATH) -> list[CallRecord]:
    return [c for c in emu.calls if c.path == path]


def test_429_with_retry_after_and_503_are_retried(authorized: FreshBooksEmulator) -> None:
    authorized.add_client(email="r@example.com")
    authorized.inject_fault("429", count=1, path_prefix=CLIENTS_PATH, retry_after=7)
    authorized.inject_fault("503", count=1, path_prefix=CLIENTS_PATH)
    sleeps: list[float] = []
    h = hook(sleep=sleeps.append)
    assert [c.email for c in h.iter_clients()] == ["r@example.com"]
    assert [(c.status, c.fault) for c in _calls(authorized)] == [(429, "429"), (503, "503"), (200, None)]
    assert len(sleeps) == 2
    assert sleeps[0] >= 7  # Retry-After is a floor
    assert sleeps[1] < 7


def test_persistent_429_ends_in_rate_limited(authorized: FreshBooksEmulator) -> None:
    authorized.inject_fault("429", count=10, path_prefix=CLIENTS_PATH)
    h = hook(policy=RetryPolicy(attempts=2))
    with pytest.raises(RateLimited) as err:
        list(h.iter_clients())
    assert err.value.retryable
    assert err.value.status == 429
    assert "rate limit" in str(err.value)
    assert len(_calls(authorized)) == 3


def test_html_502_is_reported_without_crashing(authorized: FreshBooksEmulator) -> None:
    authorized.inject_fault("502", count=10, path_prefix=CLIENTS_PATH)
    with pytest.raises(ApiError) as err:
        list(hook(policy=RetryPolicy(attempts=1)).iter_clients())
    assert err.value.status == 502
    assert err.value.retryable
    assert "502 Bad Gateway" in str(err.value)
    assert "<html>" not in str(err.value)


def test_read_timeout_is_set_and_retried(authorized: FreshBooksEmulator) -> None:
    authorized.add_client(email="slow@example.com")
    authorized.inject_fault("timeout", count=1, path_prefix=CLIENTS_PATH, delay=2)
    started = time.monotonic()
    emails = [c.email for c in hook(timeout=(2.0, 0.3)).iter_clients()]
    assert emails == ["slow@example.com"]
    assert time.monotonic() - started < 1.5  # the client gave up after 0.3 s instead of waiting 2 s


def test_missing_scope_names_it(emulator: FreshBooksEmulator) -> None:
    authorize(emulator, scopes="user:profile:read user:clients:read user:payments:read")
    with pytest.raises(AuthError) as err:
        list(hook().iter_invoices())
    text = str(err.value)
    assert err.value.status == 403
    assert "user:invoices:read" in text
    assert "fbmkto authorize --conn-id freshbooks_default" in text
    assert "'user:clients:read'" not in text.split("Missing OAuth scope")[1]
    assert len([c for c in emulator.calls if c.path.endswith("/invoices/invoices")]) == 1  # 403 is not retried
    with pytest.raises(AuthError, match="user:invoices:read"):
        hook().register_webhook("invoice.create", "https://example.com/hook")


def test_accounting_error_shape(authorized: FreshBooksEmulator) -> None:
    with pytest.raises(ApiError) as err:
        hook().get_client(424242)
    assert err.value.status == 404
    assert err.value.code == "1012"
    assert "Client not found." in str(err.value)


def test_events_error_shape_with_details(authorized: FreshBooksEmulator) -> None:
    with pytest.raises(ApiError) as err:
        hook().register_webhook("invoice.explode", "https://example.com/hook")
    assert err.value.status == 422
    assert "Unrecognized event" in str(err.value)
    assert len([c for c in authorized.calls if c.path.endswith("/events/callbacks")]) == 1


def test_oauth_error_shape(emulator: FreshBooksEmulator) -> None:
    with pytest.raises(AuthError) as err:
        hook().exchange_code("bogus")
    assert err.value.code == "invalid_grant"
    assert "invalid_grant" in str(err.value)


def test_wrong_client_secret(emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_DEFAULT", emulator.conn_json().replace("fb-client-secret", "nope"))
    with pytest.raises(AuthError) as err:
        hook().exchange_code(emulator.issue_code())
    assert err.value.status == 401
    assert "client secret" in str(err.value)
    assert "nope" not in str(err.value)

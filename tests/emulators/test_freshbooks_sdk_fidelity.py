"""FreshBooks' official Python SDK (``freshbooks-sdk``) works against the emulator unchanged.

The SDK was written against the real API, so where it and the emulator disagree the emulator is suspect.
It is pointed at the emulator through the environment variables it reads when a ``Client`` is built:
``FRESHBOOKS_API_URL`` (API and token URL) and ``FRESHBOOKS_AUTH_URL`` (authorize page); it has no
constructor argument for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from freshbooks.builders.filter import FilterBuilder
from freshbooks.builders.paginator import PaginateBuilder
from freshbooks.client import Client
from freshbooks.errors import FreshBooksError
from freshbooks.models import VisState

from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

UTC = timezone.utc
NOWHERE = "http://127.0.0.1:9/hook"  # loopback, nothing listens: deliveries fail fast, never leave the host
NOW = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)


@pytest.fixture
def fb(monkeypatch: pytest.MonkeyPatch) -> Iterator[FreshBooksEmulator]:
    with FreshBooksEmulator(clock=lambda: NOW) as emu:
        monkeypatch.setenv("FRESHBOOKS_API_URL", emu.url)
        monkeypatch.setenv("FRESHBOOKS_AUTH_URL", emu.url)
        yield emu


def sdk(fb: FreshBooksEmulator) -> Client:
    return Client(
        client_id=fb.client_id, client_secret=fb.client_secret, redirect_uri=fb.redirect_uri, auto_retry=False
    )


def authorized(fb: FreshBooksEmulator) -> Client:
    client = sdk(fb)
    client.get_access_token(fb.issue_code())
    return client


def test_sdk_token_exchange_and_rotating_refresh(fb: FreshBooksEmulator) -> None:
    client = sdk(fb)
    assert client.token_url == f"{fb.url}/auth/oauth/token"
    first = client.get_access_token(fb.issue_code())
    assert first.access_token
    assert first.refresh_token
    assert first.access_token_expires_at == NOW + timedelta(hours=12)
    (call,) = fb.token_calls()
    assert call.body is not None
    assert call.body["grant_type"] == "authorization_code"  # the SDK posts a form

    second = client.refresh_access_token()
    assert second.refresh_token != first.refresh_token
    assert client.access_token == second.access_token
    # spending the old refresh token again fails the way the SDK reports OAuth errors
    with pytest.raises(FreshBooksError) as err:
        sdk(fb).refresh_access_token(first.refresh_token)
    assert err.value.status_code == 400
    assert "single-use" in str(err.value)


def test_sdk_authorization_url_is_served_by_the_emulator(fb: FreshBooksEmulator) -> None:
    client = sdk(fb)
    url = client.get_auth_request_url(["user:profile:read", "user:invoices:read"])
    assert url.startswith(f"{fb.url}{fb.authorize_url_path}?")
    answer = requests.get(url, allow_redirects=False, timeout=5)  # the user clicks "Allow"
    assert answer.status_code == 302
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    client.get_access_token(code)
    assert fb.token_calls()[-1].status == 200
    assert client.access_token is not None
    assert fb.oauth.access[client.access_token].scopes == ("user:profile:read", "user:invoices:read")


def test_sdk_current_user(fb: FreshBooksEmulator) -> None:
    me = authorized(fb).current_user()
    assert me.identity_id == fb.identity_id
    assert me.full_name == "Alex Rivera"
    (membership,) = me.business_memberships
    assert membership.business.account_id == fb.account_id
    assert membership.business.id == fb.business_id


def test_sdk_lists_clients_and_invoices_with_paging_and_filters(fb: FreshBooksEmulator) -> None:
    made = [fb.add_client(email=f"p{i}@example.com", organization=f"Org {i}")["id"] for i in range(23)]
    client = authorized(fb)

    page2 = client.clients.list(fb.account_id, builders=[PaginateBuilder(2, 10)])
    assert page2.pages == (2, 3, 10, 23)  # PageResult(page, pages, per_page, total)
    assert [c.userid for c in page2] == made[10:20]
    assert page2[0].organization == "Org 10"
    # the SDK reads `updated` as US/Eastern and converts it to UTC: it must land on the emulator's instant
    assert page2[0].updated == NOW
    assert page2[0].vis_state == VisState.ACTIVE

    old = fb.add_invoice(customerid=made[0], create_date="2025-01-02", amount="10.00")
    fb.update("invoice", old["id"], updated=datetime(2025, 1, 3, 12, tzinfo=UTC))
    recent = fb.add_invoice(customerid=made[1], create_date="2025-03-01", amount="99.95")
    since = FilterBuilder().between("updated", min=date(2025, 3, 1))
    invoices = client.invoices.list(fb.account_id, builders=[since, PaginateBuilder(1, 100)])
    assert [i.invoiceid for i in invoices] == [recent["id"]]
    assert invoices[0].amount.amount == "99.95"
    assert invoices[0].amount.code == "USD"
    assert invoices[0].create_date == date(2025, 3, 1)


def test_sdk_errors_and_webhook_callbacks(fb: FreshBooksEmulator) -> None:
    client = authorized(fb)
    with pytest.raises(FreshBooksError) as err:
        client.clients.get(fb.account_id, 4242)
    assert (err.value.status_code, err.value.error_code, str(err.value)) == (404, 1012, "Client not found.")

    created = client.callbacks.create(fb.account_id, {"event": "invoice.create", "uri": NOWHERE})
    assert created.verified is False
    callback_id = created.callbackid
    fb.wait_for_webhooks()  # the verification goes nowhere reachable: recorded as failed, harmless
    verified = client.callbacks.verify(fb.account_id, callback_id, fb.webhooks.callbacks[callback_id].verifier)
    assert verified.verified is True
    assert [c.callbackid for c in client.callbacks.list(fb.account_id)] == [callback_id]
    with pytest.raises(FreshBooksError) as bad:
        client.callbacks.verify(fb.account_id, callback_id, "wrong")
    assert bad.value.status_code == 422
    assert client.callbacks.delete(fb.account_id, callback_id).data == {}

    fb.expire_access_tokens()
    with pytest.raises(FreshBooksError) as expired:
        client.invoices.list(fb.account_id)
    assert expired.value.status_code == 401

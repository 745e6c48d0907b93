"""The FreshBooks emulator through the wire: one test (or more) per rule of the package docstring's table.

Every call goes over real HTTP with ``requests``; expected values come from FreshBooks' documented behaviour
(api/freshbooks.md), computed independently here (e.g. the webhook HMAC), never read back from the emulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from airflow_provider_fbmkto.testing.freshbooks import FREE_MAIL_DOMAINS, FreshBooksEmulator, FreshBooksModel, seed
from airflow_provider_fbmkto.testing.server import ThreadedServer

UTC = timezone.utc
NOWHERE = "http://127.0.0.1:9/hook"  # loopback, nothing listens: deliveries fail fast, never leave the host
DEFAULT_SCOPES = "user:profile:read user:clients:read user:invoices:read user:payments:read"
ACCT = "ACME01"


class FakeClock:
    """A settable clock (aware UTC)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


START = datetime(2025, 1, 15, 17, 0, tzinfo=UTC)  # 12:00 US/Eastern


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FreshBooksEmulator, FakeClock]]:
    """One server per module (starting uvicorn per test costs more than the tests); each test resets it."""
    clock = FakeClock(START)
    with FreshBooksEmulator(port=0, clock=clock) as emu:
        yield emu, clock


@pytest.fixture
def clock(served: tuple[FreshBooksEmulator, FakeClock]) -> FakeClock:
    served[1].now = START
    return served[1]


@pytest.fixture
def fb(served: tuple[FreshBooksEmulator, FakeClock], clock: FakeClock) -> FreshBooksEmulator:
    emu = served[0]
    assert emu.wait_for_webhooks()
    emu.reset()
    return emu


def exchange(fb: FreshBooksEmulator, scopes: str = DEFAULT_SCOPES) -> dict[str, Any]:
    code = fb.issue_code(scopes)
    r = requests.post(
        f"{fb.url}/auth/oauth/token",
        json={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "fb-client-id",
            "client_secret": "fb-client-secret",
            "redirect_uri": "https://localhost/fbmkto/callback",
        },
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def refresh(fb: FreshBooksEmulator, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{fb.url}/auth/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "fb-client-id",
            "client_secret": "fb-client-secret",
            "redirect_uri": "https://localhost/fbmkto/callback",
        },
        timeout=5,
    )


@pytest.fixture
def token(fb: FreshBooksEmulator) -> str:
    return str(exchange(fb)["access_token"])


def get(fb: FreshBooksEmulator, path: str, token: str | None, params: Any = None, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{fb.url}{path}", headers=headers, params=params, timeout=kw.pop("timeout", 5), **kw)


def listing(fb: FreshBooksEmulator, token: str, resource: str, params: Any = None) -> dict[str, Any]:
    r = get(fb, f"/accounting/account/{ACCT}/{resource}", token, params)
    assert r.status_code == 200, r.text
    return dict(r.json()["response"]["result"])


def ids(result: dict[str, Any], plural: str) -> list[int]:
    return [row["id"] for row in result[plural]]


# --- OAuth ---------------------------------------------------------------------------------------------------


def test_O1_token_endpoint_takes_json_or_form_and_rejects_other_bodies(fb: FreshBooksEmulator) -> None:
    form = {
        "grant_type": "authorization_code",
        "client_id": "fb-client-id",
        "client_secret": "fb-client-secret",
        "redirect_uri": "https://localhost/fbmkto/callback",
    }
    as_json = requests.post(f"{fb.url}/auth/oauth/token", json={**form, "code": fb.issue_code()}, timeout=5)
    as_form = requests.post(f"{fb.url}/auth/oauth/token", data={**form, "code": fb.issue_code()}, timeout=5)
    assert (as_json.status_code, as_form.status_code) == (200, 200)
    garbage = requests.post(
        f"{fb.url}/auth/oauth/token", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    empty = requests.post(f"{fb.url}/auth/oauth/token", timeout=5)
    assert garbage.status_code == empty.status_code == 400
    assert garbage.json()["error"] == empty.json()["error"] == "invalid_request"
    # the call log keeps bodies as sent (secrets too: tests assert on them)
    assert fb.token_calls()[0].body == {**form, "code": fb.token_calls()[0].body["code"]}  # type: ignore[index]


@pytest.mark.parametrize(
    ("client_id", "secret"), [("fb-client-id", "wrong"), ("other", "fb-client-secret"), (None, None)], ids=str
)
def test_O2_bad_client_credentials_answer_401_invalid_client(
    fb: FreshBooksEmulator, client_id: str | None, secret: str | None
) -> None:
    body = {"grant_type": "authorization_code", "code": fb.issue_code(), "redirect_uri": fb.redirect_uri}
    if client_id:
        body |= {"client_id": client_id, "client_secret": secret or ""}
    r = requests.post(f"{fb.url}/auth/oauth/token", json=body, timeout=5)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_O3_authorization_code_is_single_use(fb: FreshBooksEmulator) -> None:
    code = fb.issue_code()
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "fb-client-id",
        "client_secret": "fb-client-secret",
        "redirect_uri": "https://localhost/fbmkto/callback",
    }
    assert requests.post(f"{fb.url}/auth/oauth/token", json=body, timeout=5).status_code == 200
    again = requests.post(f"{fb.url}/auth/oauth/token", json=body, timeout=5)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["error_description"]


def test_O4_code_lives_five_minutes_of_emulator_clock(fb: FreshBooksEmulator, clock: FakeClock) -> None:
    fresh, stale = fb.issue_code(), fb.issue_code()
    body = {"grant_type": "authorization_code", "client_id": "fb-client-id", "client_secret": "fb-client-secret"}
    body["redirect_uri"] = "https://localhost/fbmkto/callback"
    clock.advance(seconds=299)
    assert requests.post(f"{fb.url}/auth/oauth/token", json={**body, "code": fresh}, timeout=5).status_code == 200
    clock.advance(seconds=2)
    late = requests.post(f"{fb.url}/auth/oauth/token", json={**body, "code": stale}, timeout=5)
    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")


def test_O5_redirect_uri_must_match_the_code(fb: FreshBooksEmulator) -> None:
    body = {"grant_type": "authorization_code", "client_id": "fb-client-id", "client_secret": "fb-client-secret"}
    code = fb.issue_code(redirect_uri="https://other.example/cb")
    wrong = requests.post(
        f"{fb.url}/auth/oauth/token", json={**body, "code": code, "redirect_uri": fb.redirect_uri}, timeout=5
    )
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    missing = requests.post(f"{fb.url}/auth/oauth/token", json={**body, "code": fb.issue_code()}, timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_grant")


def test_O6_refresh_tokens_are_single_use_and_rotate(fb: FreshBooksEmulator) -> None:
    first = exchange(fb)
    r = refresh(fb, first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    spent = refresh(fb, first["refresh_token"])
    assert spent.status_code == 400
    assert spent.json()["error"] == "invalid_grant"
    assert "error_description" in spent.json()
    # the previous access token stays valid until its own expiry; the new refresh token works once
    assert get(fb, "/auth/api/v1/users/me", first["access_token"]).status_code == 200
    assert refresh(fb, second["refresh_token"]).status_code == 200
    assert refresh(fb, second["refresh_token"]).status_code == 400


def test_O7_revoked_refresh_tokens_answer_invalid_grant(fb: FreshBooksEmulator) -> None:
    pair = exchange(fb)
    fb.revoke_refresh_tokens()
    r = refresh(fb, pair["refresh_token"])
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_O8_token_response_fields(fb: FreshBooksEmulator, clock: FakeClock) -> None:
    pair = exchange(fb, "user:profile:read user:clients:read")
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 43200
    assert pair["scope"] == "user:profile:read user:clients:read"
    assert pair["created_at"] == int(clock.now.timestamp())
    assert pair["access_token"]
    assert pair["refresh_token"]


def test_O9_authorize_redirects_with_a_code_and_validates_parameters(fb: FreshBooksEmulator) -> None:
    base = {"client_id": "fb-client-id", "response_type": "code", "redirect_uri": fb.redirect_uri}

    def authorize(**over: str) -> requests.Response:
        params = {k: v for k, v in {**base, **over}.items() if v}
        return requests.get(f"{fb.url}{fb.authorize_url_path}", params=params, allow_redirects=False, timeout=5)

    ok = authorize(scope="user:profile:read user:clients:read")
    assert ok.status_code == 302
    location = urlsplit(ok.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == fb.redirect_uri
    code = parse_qs(location.query)["code"][0]
    body = {**base, "grant_type": "authorization_code", "client_secret": "fb-client-secret", "code": code}
    token = requests.post(f"{fb.url}/auth/oauth/token", data=body, timeout=5).json()
    assert token["scope"] == "user:profile:read user:clients:read"

    assert authorize(redirect_uri="https://evil.example/cb").status_code == 400
    assert "location" not in authorize(redirect_uri="https://evil.example/cb").headers
    assert authorize(client_id="nobody").status_code == 401
    bad_type = authorize(response_type="token")
    assert parse_qs(urlsplit(bad_type.headers["location"]).query)["error"] == ["unsupported_response_type"]
    bad_scope = authorize(scope="user:everything:read")
    assert parse_qs(urlsplit(bad_scope.headers["location"]).query)["error"] == ["invalid_scope"]


# --- access ----------------------------------------------------------------------------------------------------


def test_A1_bearer_token_required_with_family_shaped_401(fb: FreshBooksEmulator, clock: FakeClock) -> None:
    me = get(fb, "/auth/api/v1/users/me", None)
    assert me.status_code == 401
    assert me.json()["error"] == "unauthenticated"
    assert me.headers["www-authenticate"].startswith("Bearer")
    acct = get(fb, f"/accounting/account/{ACCT}/users/clients", "not-a-token")
    assert acct.status_code == 401
    assert acct.json()["response"]["errors"][0]["errno"]
    events = get(fb, f"/events/account/{ACCT}/events/callbacks", None)
    assert events.status_code == 401
    assert events.json()["errno"] == 401

    pair = exchange(fb)
    assert get(fb, "/auth/api/v1/users/me", pair["access_token"]).status_code == 200
    clock.advance(seconds=43199)
    assert get(fb, "/auth/api/v1/users/me", pair["access_token"]).status_code == 200
    clock.advance(seconds=1)
    assert get(fb, "/auth/api/v1/users/me", pair["access_token"]).status_code == 401


def test_A1_expire_access_tokens(fb: FreshBooksEmulator, token: str) -> None:
    fb.expire_access_tokens()
    assert get(fb, f"/accounting/account/{ACCT}/invoices/invoices", token).status_code == 401


def test_A2_missing_scope_is_403_naming_granted_and_needed(fb: FreshBooksEmulator) -> None:
    narrow = exchange(fb, "user:clients:read")["access_token"]
    assert get(fb, f"/accounting/account/{ACCT}/users/clients", narrow).status_code == 200
    r = get(fb, f"/accounting/account/{ACCT}/invoices/invoices", narrow)
    assert r.status_code == 403
    message = r.json()["response"]["errors"][0]["message"]
    assert "user:invoices:read" in message
    assert "user:clients:read" in message
    me = get(fb, "/auth/api/v1/users/me", narrow)
    assert me.status_code == 403
    assert "user:profile:read" in me.json()["error_description"]
    hook = requests.post(
        f"{fb.url}/events/account/{ACCT}/events/callbacks",
        json={"callback": {"event": "payment.create", "uri": NOWHERE}},
        headers={"Authorization": f"Bearer {narrow}"},
        timeout=5,
    )
    assert hook.status_code == 403
    assert "user:payments:read" in hook.json()["message"]


# --- identity and accounting --------------------------------------------------------------------------------------


def test_I1_users_me_names_business_and_account(fb: FreshBooksEmulator, token: str) -> None:
    body = get(fb, "/auth/api/v1/users/me", token).json()
    (membership,) = body["response"]["business_memberships"]
    assert membership["business"]["id"] == 1001
    assert membership["business"]["account_id"] == "ACME01"
    assert body["response"]["email"]


def test_L1_list_and_single_envelopes(fb: FreshBooksEmulator, token: str) -> None:
    client = fb.add_client(email="a@bigco.io", fname="A", lname="B", organization="BigCo")
    inv = fb.add_invoice(customerid=client["id"], amount="10.00")
    listed = get(fb, f"/accounting/account/{ACCT}/invoices/invoices", token).json()
    assert set(listed["response"]["result"]) == {"invoices", "page", "pages", "per_page", "total"}
    single = get(fb, f"/accounting/account/{ACCT}/invoices/invoices/{inv['id']}", token).json()
    assert single["response"]["result"]["invoice"]["id"] == inv["id"]
    got = get(fb, f"/accounting/account/{ACCT}/users/clients/{client['id']}", token).json()
    assert got["response"]["result"]["client"]["email"] == "a@bigco.io"
    missing = get(fb, f"/accounting/account/{ACCT}/users/clients/999", token)
    assert missing.status_code == 404
    assert missing.json()["response"]["errors"][0]["errno"] == 1012


def test_L2_wrong_account_is_404_envelope(fb: FreshBooksEmulator, token: str) -> None:
    r = get(fb, "/accounting/account/OTHER9/users/clients", token)
    assert r.status_code == 404
    (error,) = r.json()["response"]["errors"]
    assert {"errno", "field", "message", "object"} <= set(error)
    unknown = get(fb, f"/accounting/account/{ACCT}/estimates/estimates", token)  # not emulated: same envelope
    assert unknown.status_code == 404
    assert unknown.json()["response"]["errors"][0]["errno"] == 1012
    wrong_method = requests.delete(f"{fb.url}/accounting/account/{ACCT}/users/clients", timeout=5)
    assert wrong_method.status_code == 405


def test_L3_paging_default_cap_and_past_end(fb: FreshBooksEmulator, token: str) -> None:
    made = [fb.add_client(email=f"c{i}@example.org")["id"] for i in range(123)]
    first = listing(fb, token, "users/clients")
    assert (first["page"], first["per_page"], first["pages"], first["total"]) == (1, 15, 9, 123)
    capped = listing(fb, token, "users/clients", {"per_page": 500, "page": 2})
    assert capped["per_page"] == 100
    assert len(capped["clients"]) == 23
    past = listing(fb, token, "users/clients", {"page": 7, "per_page": 50})
    assert past["clients"] == []
    assert past["total"] == 123
    walked = [c for p in range(1, 10) for c in ids(listing(fb, token, "users/clients", {"page": p}), "clients")]
    assert walked == made
    assert listing(fb, token, "users/clients", {"page": 0})["page"] == 1
    bad = get(fb, f"/accounting/account/{ACCT}/users/clients", token, {"per_page": "ten"})
    assert bad.status_code == 400
    assert bad.json()["response"]["errors"][0]["field"] == "per_page"


def test_L4_updated_search_is_dst_correct_and_max_exclusive(fb: FreshBooksEmulator, token: str) -> None:
    def at(iso: str) -> int:
        return int(fb.add_client(email=f"x{iso[:13]}{iso[14:16]}@x.org", updated=datetime.fromisoformat(iso))["id"])

    a = at("2024-03-10T04:30:00+00:00")  # 23:30 EST on Mar 9 (00:30 if EDT were wrongly applied)
    b = at("2024-03-10T07:30:00+00:00")  # 03:30 EDT on Mar 10 (just after spring-forward)
    c = at("2024-11-03T05:30:00+00:00")  # 01:30 EDT on Nov 3 (first pass of the fold)
    d = at("2024-11-03T06:30:00+00:00")  # 01:30 EST on Nov 3 (second pass)
    e = at("2024-11-04T04:30:00+00:00")  # 23:30 EST on Nov 3 (UTC says Nov 4)

    def window(lo: str, hi: str) -> list[int]:
        params = {"search[updated_min]": lo, "search[updated_max]": hi, "per_page": 100}
        return ids(listing(fb, token, "users/clients", params), "clients")

    assert window("2024-03-10", "2024-03-11") == [b]
    assert window("2024-03-09", "2024-03-10") == [a]  # updated_max exclusive: b (Mar 10) is out
    assert window("2024-11-03", "2024-11-04") == [c, d, e]
    assert window("2024-11-04", "2024-11-05") == []
    rows = {r["id"]: r["updated"] for r in listing(fb, token, "users/clients", {"per_page": 100})["clients"]}
    assert rows[a] == "2024-03-09 23:30:00"
    assert rows[b] == "2024-03-10 03:30:00"
    assert rows[c] == rows[d] == "2024-11-03 01:30:00"
    assert rows[e] == "2024-11-03 23:30:00"


def test_L5_invoice_payment_client_filters(fb: FreshBooksEmulator, token: str) -> None:
    c1 = fb.add_client(email="Pat@Shop.io")["id"]
    c2 = fb.add_client(email="sam@shop.io")["id"]
    i1 = fb.add_invoice(customerid=c1, create_date="2024-12-01", amount="50.00")["id"]
    i2 = fb.add_invoice(customerid=c1, create_date="2024-12-31", amount="60.00", due_offset_days=30)["id"]
    i3 = fb.add_invoice(customerid=c2, create_date="2025-01-10", amount="70.00", due_offset_days=30)["id"]
    p1 = fb.add_payment(invoiceid=i2, amount="10.00")["id"]
    fb.add_payment(invoiceid=i3, amount="70.00")
    inv = "invoices/invoices"
    assert ids(listing(fb, token, inv, {"search[date_min]": "2024-12-31"}), "invoices") == [i2, i3]
    assert ids(listing(fb, token, inv, {"search[date_max]": "2024-12-31"}), "invoices") == [i1, i2]
    assert ids(listing(fb, token, inv, {"search[customerid]": c2}), "invoices") == [i3]
    assert ids(listing(fb, token, inv, {"search[invoiceids][]": [i1, i3]}), "invoices") == [i1, i3]
    # i1: due 2024-12-31, unpaid, clock is 2025-01-15 -> overdue; i2 partial but not yet due; i3 paid
    assert ids(listing(fb, token, inv, {"search[v3_status]": "overdue"}), "invoices") == [i1]
    assert ids(listing(fb, token, inv, {"search[v3_status]": "partial"}), "invoices") == [i2]
    assert ids(listing(fb, token, "payments/payments", {"search[invoiceid]": i2}), "payments") == [p1]
    assert ids(listing(fb, token, "users/clients", {"search[email]": "pat@shop.io"}), "clients") == [c1]


def test_L6_unknown_search_keys_are_ignored(fb: FreshBooksEmulator, token: str) -> None:
    made = [fb.add_client(email=f"u{i}@example.org")["id"] for i in range(3)]
    typo = {"search[updatd_min]": "2099-01-01", "search[nonsense][]": "1", "foo": "bar"}
    assert ids(listing(fb, token, "users/clients", typo), "clients") == made
    # a key valid for invoices means nothing to clients
    assert ids(listing(fb, token, "users/clients", {"search[date_min]": "2099-01-01"}), "clients") == made


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("search[updated_min]", "yesterday"),
        ("search[updated_max]", "2025-13-01"),
        ("search[date_min]", "01/02/2025"),
        ("search[customerid]", "abc"),
    ],
)
def test_L7_bad_filter_values_are_400_with_errno_field(
    fb: FreshBooksEmulator, token: str, key: str, value: str
) -> None:
    r = get(fb, f"/accounting/account/{ACCT}/invoices/invoices", token, {key: value})
    assert r.status_code == 400
    (error,) = r.json()["response"]["errors"]
    assert error["field"] == key[len("search[") : -1]
    assert isinstance(error["errno"], int)
    assert value in error["message"]


def test_L8_deleted_hidden_archived_shown_vis_state_filter(fb: FreshBooksEmulator, token: str) -> None:
    live = fb.add_client(email="live@x.org")["id"]
    gone = fb.add_client(email="gone@x.org")["id"]
    archived = fb.add_client(email="arch@x.org", vis_state=2)["id"]
    fb.delete("client", gone)
    assert ids(listing(fb, token, "users/clients"), "clients") == [live, archived]
    assert ids(listing(fb, token, "users/clients", {"search[vis_state]": 1}), "clients") == [gone]
    assert ids(listing(fb, token, "users/clients", {"search[vis_state]": 2}), "clients") == [archived]
    assert ids(listing(fb, token, "users/clients", {"search[vis_state]": 0}), "clients") == [live]
    single = get(fb, f"/accounting/account/{ACCT}/users/clients/{gone}", token).json()
    assert single["response"]["result"]["client"]["vis_state"] == 1


def test_L9_formats_eastern_strings_dates_and_money(fb: FreshBooksEmulator, token: str, clock: FakeClock) -> None:
    client = fb.add_client(email="f@x.org")
    invoice = fb.add_invoice(customerid=client["id"], amount="1234.5", create_date="2025-01-02")
    row = listing(fb, token, "invoices/invoices")["invoices"][0]
    assert row["updated"] == "2025-01-15 12:00:00"  # 17:00 UTC in January is 12:00 EST
    assert row["created_at"] == "2025-01-15 12:00:00"
    assert row["create_date"] == "2025-01-02"
    assert row["due_date"] == "2025-02-01"
    assert row["amount"] == {"amount": "1234.50", "code": "USD"}
    assert row["outstanding"] == {"amount": "1234.50", "code": "USD"}
    assert row["id"] == invoice["id"]
    crow = listing(fb, token, "users/clients")["clients"][0]
    assert crow["signup_date"] == "2025-01-15 17:00:00"  # clients' signup_date is UTC


def test_L10_id_aliases(fb: FreshBooksEmulator, token: str) -> None:
    cid = fb.add_client(email="g@x.org")["id"]
    iid = fb.add_invoice(customerid=cid)["id"]
    fb.add_payment(invoiceid=iid, amount="5.00")
    client = listing(fb, token, "users/clients")["clients"][0]
    invoice = listing(fb, token, "invoices/invoices")["invoices"][0]
    payment = listing(fb, token, "payments/payments")["payments"][0]
    assert client["id"] == client["userid"]
    assert invoice["id"] == invoice["invoiceid"]
    assert payment["id"] == payment["logid"]
    assert "paymentid" not in payment
    assert (payment["invoiceid"], payment["clientid"]) == (iid, cid)


def test_L11_payments_drive_invoice_state(fb: FreshBooksEmulator, token: str, clock: FakeClock) -> None:
    cid = fb.add_client(email="h@x.org")["id"]
    iid = fb.add_invoice(customerid=cid, amount="100.00", create_date="2025-01-10", due_offset_days=10)["id"]

    def invoice() -> dict[str, Any]:
        r = get(fb, f"/accounting/account/{ACCT}/invoices/invoices/{iid}", exchange(fb)["access_token"])
        return dict(r.json()["response"]["result"]["invoice"])

    before = invoice()
    assert (before["status"], before["v3_status"], before["payment_status"]) == (2, "sent", "unpaid")
    clock.advance(hours=2)
    first = fb.add_payment(invoiceid=iid, amount="40.00", date="2025-01-15")
    partial = invoice()
    assert (partial["status"], partial["v3_status"], partial["payment_status"]) == (8, "partial", "partial")
    assert partial["paid"]["amount"] == "40.00"
    assert partial["outstanding"]["amount"] == "60.00"
    assert partial["date_paid"] is None
    assert partial["updated"] == "2025-01-15 14:00:00" != before["updated"]
    with pytest.raises(ValueError, match="amount"):
        fb.add_payment(invoiceid=iid, amount="60.01")
    fb.add_payment(invoiceid=iid, amount="60.00", date="2025-01-16")
    paid = invoice()
    assert (paid["status"], paid["v3_status"], paid["payment_status"]) == (4, "paid", "paid")
    assert paid["outstanding"]["amount"] == "0.00"
    assert paid["date_paid"] == "2025-01-16"
    fb.delete("payment", first["id"])
    reverted = invoice()
    assert (reverted["status"], reverted["paid"]["amount"], reverted["date_paid"]) == (8, "60.00", None)
    clock.advance(days=6)  # 2025-01-21: past the due date 2025-01-20 while 40.00 is open
    assert invoice()["v3_status"] == "overdue"


# --- webhooks --------------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A tiny webhook receiver (real HTTP) that records form posts and their signature headers."""

    delay: float = 0.0
    hits: list[tuple[float, dict[str, str], str | None]] = field(default_factory=list)
    server: ThreadedServer | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        form = await request.form()
        if self.delay:
            time.sleep(self.delay)  # a slow receiver: blocks on purpose
        self.hits.append(
            (time.monotonic(), {k: str(v) for k, v in form.items()}, request.headers.get("x-freshbooks-hmac-sha256"))
        )
        await PlainTextResponse("ok")(scope, receive, send)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/hook"

    def named(self, name: str) -> list[dict[str, str]]:
        return [fields for _, fields, _ in self.hits if fields.get("name") == name]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with ThreadedServer(rec) as server:
        rec.server = server
        yield rec


def expected_signature(fields: dict[str, str], verifier: str) -> str:
    digest = hmac.new(verifier.encode(), json.dumps(fields).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def events_call(
    fb: FreshBooksEmulator, token: str, method: str, suffix: str = "", body: Any = None
) -> requests.Response:
    return requests.request(
        method,
        f"{fb.url}/events/account/{ACCT}/events/callbacks{suffix}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def register(fb: FreshBooksEmulator, token: str, event: str, uri: str, *, verify: bool = True) -> int:
    r = events_call(fb, token, "POST", body={"callback": {"event": event, "uri": uri}})
    assert r.status_code == 200, r.text
    cb = r.json()["response"]["result"]["callback"]
    assert cb["verified"] is False
    if verify:
        assert fb.wait_for_webhooks()
        verifier = fb.webhooks.callbacks[cb["callbackid"]].verifier
        put = events_call(fb, token, "PUT", f"/{cb['callbackid']}", {"callback": {"verifier": verifier}})
        assert put.json()["response"]["result"]["callback"]["verified"] is True
    return int(cb["callbackid"])


def test_W1_callback_management(fb: FreshBooksEmulator, token: str) -> None:
    cid = register(fb, token, "invoice.create", NOWHERE, verify=False)
    listed = events_call(fb, token, "GET").json()["response"]["result"]
    assert [c["callbackid"] for c in listed["callbacks"]] == [cid]
    assert listed["total"] == 1
    one = events_call(fb, token, "GET", f"/{cid}").json()["response"]["result"]["callback"]
    assert (one["event"], one["uri"]) == ("invoice.create", NOWHERE)
    assert fb.wait_for_webhooks()
    (attempt,) = fb.webhooks.deliveries  # the verification POST was tried and its failure recorded
    assert (attempt.callback_id, attempt.fields["name"], attempt.status) == (cid, "callback.verify", None)
    assert attempt.error
    bad = events_call(fb, token, "POST", body={"callback": {"event": "invoice.explode", "uri": "not a url"}})
    assert bad.status_code == 422
    assert len(bad.json()["details"]) == 2
    deleted = events_call(fb, token, "DELETE", f"/{cid}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = events_call(fb, token, "GET", f"/{cid}")
    assert (gone.status_code, gone.json()["errno"]) == (404, 404)


def test_W2_verification_is_sent_after_create_answers_and_confirms(
    fb: FreshBooksEmulator, token: str, receiver: Receiver
) -> None:
    receiver.delay = 1.0  # a slow receiver must not hold up the create call
    started = time.monotonic()
    cid = register(fb, token, "invoice", receiver.url, verify=False)
    answered = time.monotonic()
    assert answered - started < 0.8
    assert fb.wait_for_webhooks()
    ((hit_at, verify, signature),) = receiver.hits
    assert hit_at > answered
    assert verify["name"] == "callback.verify"
    assert verify["object_id"] == str(cid)
    assert signature == expected_signature(verify, verify["verifier"])
    receiver.delay = 0.0
    wrong = events_call(fb, token, "PUT", f"/{cid}", {"callback": {"verifier": "guess"}})
    assert wrong.status_code == 422
    resent = events_call(fb, token, "PUT", f"/{cid}", {"callback": {"resend": True}})
    assert resent.status_code == 200
    assert fb.wait_for_webhooks()
    second = receiver.named("callback.verify")[-1]["verifier"]
    assert second != verify["verifier"]
    stale = events_call(fb, token, "PUT", f"/{cid}", {"callback": {"verifier": verify["verifier"]}})
    assert stale.status_code == 422
    ok = events_call(fb, token, "PUT", f"/{cid}", {"callback": {"verifier": second}})
    assert ok.json()["response"]["result"]["callback"]["verified"] is True


def test_W3_only_verified_callbacks_get_signed_events(fb: FreshBooksEmulator, token: str, receiver: Receiver) -> None:
    register(fb, token, "client.create", receiver.url, verify=False)
    fb.add_client(email="quiet@x.org")
    assert fb.wait_for_webhooks()
    assert receiver.named("client.create") == []

    cid = register(fb, token, "client.create", receiver.url + "?v=1")
    verifier = fb.webhooks.callbacks[cid].verifier
    client = fb.add_client(email="loud@x.org")
    fb.update("client", client["id"], fname="Changed")  # not subscribed: client.update
    assert fb.wait_for_webhooks()
    ((_, fields, signature),) = [h for h in receiver.hits if h[1]["name"] == "client.create"]
    assert fields == {
        "name": "client.create",
        "object_id": str(client["id"]),
        "account_id": "ACME01",
        "business_id": "1001",
        "identity_id": fields["identity_id"],
        "user_id": fields["user_id"],
    }
    assert list(fields) == ["name", "object_id", "account_id", "business_id", "identity_id", "user_id"]
    assert signature == expected_signature(fields, verifier)
    assert fb.sign_webhook(fields, verifier) == signature


def test_W4_record_changes_and_send_invoice_emit_events(fb: FreshBooksEmulator, token: str, receiver: Receiver) -> None:
    register(fb, token, "invoice", receiver.url)
    register(fb, token, "payment.create", receiver.url)
    cid = fb.add_client(email="w4@x.org")["id"]
    iid = fb.add_invoice(customerid=cid, status="draft", amount="20.00")["id"]
    sent = fb.send_invoice(iid)
    assert (sent["status"], sent["v3_status"]) == (2, "sent")
    pid = fb.add_payment(invoiceid=iid, amount="20.00")["id"]
    fb.delete("invoice", iid)
    assert fb.wait_for_webhooks()
    names = [(f["name"], f["object_id"]) for _, f, _ in receiver.hits if f["name"] != "callback.verify"]
    assert names == [
        ("invoice.create", str(iid)),
        ("invoice.sendByEmail", str(iid)),
        ("payment.create", str(pid)),
        ("invoice.update", str(iid)),
        ("invoice.delete", str(iid)),
    ]
    # the test helper posts one signed delivery synchronously
    r = fb.deliver_webhook(receiver.url, "invoice.update", iid)
    assert r.status_code == 200
    _, fields, signature = receiver.hits[-1]
    assert signature == expected_signature(fields, fb.webhooks.callbacks[min(fb.webhooks.callbacks)].verifier)


# --- faults ----------------------------------------------------------------------------------------------------


def test_F1_5xx_and_429_faults(fb: FreshBooksEmulator, token: str) -> None:
    path = f"/accounting/account/{ACCT}/users/clients"
    fb.inject_fault("500")
    fb.inject_fault("502")
    fb.inject_fault("503", retry_after=7)
    fb.inject_fault("429", count=2, retry_after=3)
    r500, r502, r503 = (get(fb, path, token) for _ in range(3))
    assert (r500.status_code, r500.json()["errno"]) == (500, 500)
    assert r502.status_code == 502
    assert r502.headers["content-type"].startswith("text/html")
    assert (r503.status_code, r503.headers["retry-after"]) == (503, "7")
    limited = [get(fb, path, token) for _ in range(2)]
    assert [(r.status_code, r.headers["retry-after"]) for r in limited] == [(429, "3"), (429, "3")]
    assert get(fb, path, token).status_code == 200
    assert [c.fault for c in fb.calls[-6:]] == ["500", "502", "503", "429", "429", None]


def test_F1_fault_path_prefix_only_hits_matching_calls(fb: FreshBooksEmulator, token: str) -> None:
    fb.inject_fault("500", path_prefix="/accounting/account/ACME01/invoices")
    assert get(fb, f"/accounting/account/{ACCT}/users/clients", token).status_code == 200
    assert get(fb, f"/accounting/account/{ACCT}/invoices/invoices", token).status_code == 500
    assert get(fb, f"/accounting/account/{ACCT}/invoices/invoices", token).status_code == 200


def test_F1_timeout_and_slow_faults(fb: FreshBooksEmulator, token: str) -> None:
    path = f"/accounting/account/{ACCT}/users/clients"
    fb.inject_fault("timeout", delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        get(fb, path, token, timeout=0.3)
    fb.inject_fault("timeout", delay=0.2)
    assert get(fb, path, token, timeout=5).status_code == 504
    fb.inject_fault("slow", delay=0.4)
    started = time.monotonic()
    assert get(fb, path, token).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_F1_401_fault_expires_the_token(fb: FreshBooksEmulator) -> None:
    pair = exchange(fb)
    fb.inject_fault("401")
    assert get(fb, "/auth/api/v1/users/me", None).status_code == 401  # no token presented: nothing to expire
    assert get(fb, "/auth/api/v1/users/me", pair["access_token"]).status_code == 200
    fb.inject_fault("401")
    path = f"/accounting/account/{ACCT}/users/clients"
    assert get(fb, path, pair["access_token"]).status_code == 401
    assert get(fb, path, pair["access_token"]).status_code == 401  # stays expired: refresh needed
    fresh = refresh(fb, pair["refresh_token"]).json()["access_token"]
    assert get(fb, path, fresh).status_code == 200


def test_F1_python_inject_fault_validates(fb: FreshBooksEmulator) -> None:
    with pytest.raises(ValueError, match="kind"):
        fb.inject_fault("418")
    with pytest.raises(ValueError, match="count"):
        fb.inject_fault("500", count=0)


# --- control API -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field_name"),
    [
        ("POST", "/_emulator/faults", {"kind": "418"}, 400, "kind"),
        ("POST", "/_emulator/faults", {"kind": "500", "count": 0}, 400, "count"),
        ("POST", "/_emulator/faults", {"kind": "429", "retry_after": "soon"}, 400, "retry_after"),
        ("POST", "/_emulator/faults", {"kind": "500", "colour": "red"}, 400, "colour"),
        ("POST", "/_emulator/records/widget", {}, 404, "kind"),
        ("POST", "/_emulator/records/invoice", {"amount": "5.00"}, 400, "customerid"),
        ("POST", "/_emulator/records/invoice", {"customerid": 424242}, 409, "customerid"),
        ("POST", "/_emulator/records/client", {"email": "nope"}, 400, "email"),
        ("POST", "/_emulator/records/client", {"updated": "2024-03-10 02:30:00"}, 400, "updated"),
        ("PATCH", "/_emulator/records/client/999", {"fname": "x"}, 404, "id"),
        ("PATCH", "/_emulator/records/client/abc", {"fname": "x"}, 404, "id"),
        ("POST", "/_emulator/seed", {"clients": 3}, 400, "seed"),
        ("POST", "/_emulator/seed", {"seed": "s", "as_of": "soon"}, 400, "as_of"),
        ("POST", "/_emulator/code", {"scopes": "user:all:write"}, 400, "scopes"),
        ("POST", "/_emulator/clock", {"advance_seconds": -5}, 400, "advance_seconds"),
        ("POST", "/_emulator/reset", [1, 2], 400, "body"),
    ],
)
def test_C1_control_api_bad_input_is_4xx_naming_the_field(
    fb: FreshBooksEmulator, method: str, path: str, body: Any, status: int, field_name: str
) -> None:
    r = requests.request(method, f"{fb.url}{path}", json=body, timeout=5)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field_name
    assert field_name in r.json()["error"] or field_name == "body"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)
_FIELDS = st.sampled_from(
    [
        "id",
        "email",
        "fname",
        "updated",
        "created_at",
        "customerid",
        "create_date",
        "due_offset_days",
        "due_date",
        "amount",
        "currency_code",
        "status",
        "auto_paid",
        "vis_state",
        "invoiceid",
        "clientid",
        "date",
        "type",
        "kind",
        "bogus",
    ]
)
_PLAUSIBLE = st.sampled_from(["2025-01-02", "2024-03-10 02:30:00", "9999-12-31 23:59:59", "1e400", "NaN", 10**40, -1])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["client", "invoice", "payment"]),
    body=st.dictionaries(_FIELDS, _JSON | _PLAUSIBLE, max_size=4),
    patch=st.booleans(),
)
def test_C1_control_api_never_answers_500(fb: FreshBooksEmulator, kind: str, body: dict[str, Any], patch: bool) -> None:
    if not fb.model.clients:
        cid = fb.add_client(email="fuzz@x.org")["id"]
        fb.add_payment(invoiceid=fb.add_invoice(customerid=cid, amount="50.00")["id"], amount="10.00")
    base = f"{fb.url}/_emulator/records/{kind}"
    if patch:
        r = requests.patch(f"{base}/{min(fb.model.table(kind))}", json=body, timeout=5)
    else:
        r = requests.post(base, json=body, timeout=5)
    assert r.status_code in (200, 201, 400, 404, 409), r.text
    if r.status_code >= 400:
        assert r.json()["field"]
    # and every record still renders as the API would (dates, money, Eastern timestamps)
    json.dumps([fb.model.render(rec) for rec in fb.model.table(kind).values()])


def test_C1_control_api_invalid_json(fb: FreshBooksEmulator) -> None:
    r = requests.post(f"{fb.url}/_emulator/faults", data=b"{", headers={"Content-Type": "application/json"}, timeout=5)
    assert (r.status_code, r.json()["field"]) == (400, "body")


def test_C1_control_api_round_trip(fb: FreshBooksEmulator) -> None:
    base = f"{fb.url}/_emulator"
    code = requests.post(f"{base}/code", json={}, timeout=5).json()["code"]
    body = {"grant_type": "authorization_code", "code": code, "client_id": "fb-client-id"}
    body |= {"client_secret": "fb-client-secret", "redirect_uri": fb.redirect_uri}
    token = requests.post(f"{fb.url}/auth/oauth/token", json=body, timeout=5).json()["access_token"]
    client = requests.post(f"{base}/records/clients", json={"email": "ctl@x.org"}, timeout=5)
    assert client.status_code == 201
    cid = client.json()["id"]
    patched = requests.patch(f"{base}/records/client/{cid}", json={"organization": "Ctl Inc"}, timeout=5).json()
    assert patched["organization"] == "Ctl Inc"
    assert requests.delete(f"{base}/records/client/{cid}", timeout=5).json()["vis_state"] == 1
    queued = requests.post(f"{base}/faults", json={"kind": "503", "retry_after": 1}, timeout=5)
    assert queued.status_code == 201
    assert get(fb, f"/accounting/account/{ACCT}/users/clients", token).status_code == 503
    calls = requests.get(f"{base}/calls", params={"path_prefix": "/accounting"}, timeout=5).json()["calls"]
    assert [(c["status"], c["fault"], c["has_auth"]) for c in calls] == [(503, "503", True)]
    requests.post(f"{base}/expire-tokens", timeout=5)
    assert get(fb, f"/accounting/account/{ACCT}/users/clients", token).status_code == 401
    seeded = requests.post(f"{base}/seed", json={"seed": 7, "clients": 5, "as_of": "2024-12-31"}, timeout=5).json()
    assert seeded["counts"]["clients"] == 5
    assert requests.post(f"{base}/reset", json={"reseed": False}, timeout=5).json()["counts"]["clients"] == 0


# --- seeds -----------------------------------------------------------------------------------------------------


def _model(now: datetime) -> FreshBooksModel:
    return FreshBooksModel(clock=lambda: now, account_id="ACME01")


def _snapshot(model: FreshBooksModel) -> list[dict[str, Any]]:
    return [model.render(r) for t in ("client", "invoice", "payment") for r in model.table(t).values()]


def test_S1_same_seed_same_data_other_seed_other_data() -> None:
    now = datetime(2025, 7, 1, 16, tzinfo=UTC)
    runs = []
    for value in ("acme", "acme", "other"):
        model = _model(now)
        seed(model, value, clients=60, invoices_per_client=5, as_of=date(2025, 6, 30))
        runs.append(_snapshot(model))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_S1_generated_data_has_the_edge_cases() -> None:
    now = datetime(2025, 7, 1, 16, tzinfo=UTC)
    model = _model(now)
    counts = seed(model, 11, clients=400, invoices_per_client=6, months=30, as_of=date(2025, 6, 30))
    assert counts["clients"] == 400
    clients = list(model.clients.values())
    domains = [c.email.split("@")[1] for c in clients]
    company = [d for d in domains if d not in FREE_MAIL_DOMAINS]
    assert sum(d in FREE_MAIL_DOMAINS for d in domains) > 60
    assert max(company.count(d) for d in set(company)) >= 3  # several clients share a company domain
    invoices = [model.render(i) for i in model.invoices.values()]
    create_days = {i["create_date"] for i in invoices}
    assert {"2024-03-10", "2024-11-03", "2025-03-09"} & create_days  # DST switch days
    assert {"2024-12-31", "2025-01-01"} & create_days  # year end
    # stamps around the DST switches (02:00 local: 07:00Z in March, 06:00Z in November), incl. the fold hour
    switches = [datetime(2023, 3, 12, 7), datetime(2023, 11, 5, 6), datetime(2024, 3, 10, 7)]
    switches += [datetime(2024, 11, 3, 6), datetime(2025, 3, 9, 7)]
    near = [
        i
        for i in model.invoices.values()
        for s in switches
        if abs(i.created - s.replace(tzinfo=UTC)) <= timedelta(hours=2)
    ]
    assert len(near) >= 5
    rendered_fold = {model.render(i)["created_at"][:13] for i in near}
    assert rendered_fold & {"2023-11-05 01", "2024-11-03 01"}  # 01:xx happens twice that night
    statuses = {(i["status"], i["vis_state"]) for i in invoices}
    assert {s for s, _ in statuses} >= {1, 2, 4, 8}
    assert {v for _, v in statuses} == {0, 1, 2}
    assert {c.vis_state for c in clients} == {0, 1, 2}
    currencies = [i["currency_code"] for i in invoices]
    assert currencies.count("USD") > len(currencies) / 2
    assert {"CAD", "EUR"} <= set(currencies)
    overdue = [i for i in invoices if i["v3_status"] == "overdue"]
    assert overdue
    for inv in invoices:  # every invoice is internally consistent
        amount, paid = float(inv["amount"]["amount"]), float(inv["paid"]["amount"])
        assert abs(amount - paid - float(inv["outstanding"]["amount"])) < 0.001
        assert (inv["date_paid"] is not None) == (inv["payment_status"] == "paid")


def test_S1_demo_seed_composition(clock: FakeClock) -> None:
    with FreshBooksEmulator(seed="demo", clock=clock) as fb:
        clients = list(fb.model.clients.values())
        assert len(clients) == 12
        domains = [c.email.split("@")[1] for c in clients]
        company = {d for d in domains if d not in FREE_MAIL_DOMAINS}
        assert 3 <= len(company) <= 4
        assert all(domains.count(d) >= 2 for d in company)
        assert 1 <= sum(d in FREE_MAIL_DOMAINS for d in domains) <= 3
        invoices = [fb.model.render(i) for i in fb.model.invoices.values()]
        assert 35 <= len(invoices) <= 45
        today = date(2025, 1, 15)
        assert all(today - date.fromisoformat(i["create_date"]) <= timedelta(days=60) for i in invoices)
        v3 = [i["v3_status"] for i in invoices if i["vis_state"] == 0]
        for status in ("paid", "partial", "overdue", "sent", "draft"):
            assert status in v3, status
        # rendered timestamps never lie after the emulator clock
        assert max(i["updated"] for i in invoices) <= "2025-01-15 12:00:00"
        # and the same demo again is identical
        again = FreshBooksEmulator(seed="demo", clock=clock)
        assert _snapshot(again.model) == _snapshot(fb.model)
        fb.reset()
        assert fb.model.counts()["invoices"] == len(invoices)


def test_S1_seed_is_fast_for_100k_records_and_listing_stays_fast() -> None:
    model = _model(datetime(2025, 7, 1, 16, tzinfo=UTC))
    started = time.monotonic()
    counts = seed(model, "bench", clients=10_000, invoices_per_client=5, as_of=date(2025, 6, 30))
    assert sum(counts.values()) > 90_000
    assert time.monotonic() - started < 20
    with FreshBooksEmulator() as fb:
        fb.model = model
        token = exchange(fb)["access_token"]
        started = time.monotonic()
        window = {"search[updated_min]": "2025-01-01", "search[updated_max]": "2025-02-01", "per_page": 100}
        first = listing(fb, token, "invoices/invoices", window)
        for page in range(2, min(first["pages"], 20) + 1):
            listing(fb, token, "invoices/invoices", {**window, "page": page})
        assert first["total"] > 500
        assert time.monotonic() - started < 10


def test_calls_record_method_path_query_status_time(fb: FreshBooksEmulator, token: str, clock: FakeClock) -> None:
    get(fb, f"/accounting/account/{ACCT}/users/clients", token, {"search[email]": "a@b.co", "page": 2})
    call = fb.calls[-1]
    assert (call.method, call.path, call.status, call.has_auth) == (
        "GET",
        f"/accounting/account/{ACCT}/users/clients",
        200,
        True,
    )
    assert call.query == {"search[email]": ["a@b.co"], "page": ["2"]}
    assert call.param("page") == "2"
    assert call.at == clock.now

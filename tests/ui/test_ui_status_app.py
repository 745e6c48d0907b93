"""The status page without a browser: Airflow auth, counts from the state DB, escaping, filters, replay call."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.testclient import TestClient

from airflow_provider_fbmkto.plugins.status import CSRF_COOKIE, StatusPage, build_status_router
from airflow_provider_fbmkto.plugins.status_airflow import AirflowAuth, Viewer, api_base_url
from airflow_provider_fbmkto.plugins.status_data import load_accounts
from airflow_provider_fbmkto.state import TokenPair
from tests.ui.conftest import WINDOW, FakeAirflowApi, Seeded, add_rows, cell

HTML = {"accept": "text/html,application/xhtml+xml"}


class FakeAuth:
    """Tokens -> viewers; ``readable`` limits which DAGs a token's user may read."""

    def __init__(self, users: dict[str, tuple[str, set[str] | None]]) -> None:
        self.users = users

    async def viewer(self, request: Request) -> Viewer | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() or request.cookies.get("_token", "")
        if token not in self.users:
            return None
        name, readable = self.users[token]
        return Viewer(name=name, token=token, can_read=lambda dag_id: readable is None or dag_id in readable)

    def login_url(self, request: Request) -> str | None:
        return f"/auth/login?next={request.url}"


def client_for(seeded: Seeded, *, api: FakeAirflowApi | None = None, auth: Any = None, **kw: Any) -> TestClient:
    page = StatusPage(
        auth=auth or FakeAuth({"tok-alice": ("alice", None), "tok-bob": ("bob", {"fbmkto_sync__globex"})}),
        state=lambda: seeded.db,
        accounts=lambda: load_accounts(dags_folder=str(seeded.config.parent), environ={}),
        api_url=(lambda _r: api.url) if api else api_base_url,
        **kw,
    )
    app = FastAPI()
    app.include_router(build_status_router(page))
    return TestClient(app, base_url="http://airflow.test")


def get_page(client: TestClient, token: str = "tok-alice", query: str = "") -> str:
    response = client.get(f"/status{query}", headers={**HTML, "authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text[:500]
    return response.text


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


# ------------------------------------------------------------------------------------------------- access


def test_without_an_airflow_login_the_page_is_refused(seeded: Seeded):
    client = client_for(seeded)
    browser = client.get("/status", headers=HTML, follow_redirects=False)
    assert browser.status_code == 302
    assert browser.headers["location"].startswith("/auth/login?next=")
    assert "alice" not in browser.text
    assert "activity:acme" not in browser.text

    api_client = client.get("/status", headers={"authorization": "Bearer not-a-known-token"})
    assert api_client.status_code == 401
    assert api_client.headers["www-authenticate"] == "Bearer"

    replay = client.post("/status/replay", data={"account": "acme", "csrf": "x" * 40})
    assert replay.status_code == 401


@pytest.fixture
def airflow_auth(monkeypatch: pytest.MonkeyPatch):
    """Airflow's real SimpleAuthManager with a known JWT secret; revocation looked up in a set, not the DB."""
    secret = "fbmkto-status-test-secret-" + "x" * 40
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secret)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.revoked_token import RevokedToken

    revoked: set[str] = set()
    monkeypatch.setattr(RevokedToken, "is_revoked", classmethod(lambda _cls, jti: jti in revoked))
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", None)
    manager = airflow_app.init_auth_manager()
    yield manager, SimpleAuthManagerUser, secret, revoked
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", None)


def test_airflow_jwt_from_cookie_or_bearer_is_required_and_validated(seeded: Seeded, airflow_auth):
    manager, User, secret, revoked = airflow_auth
    client = client_for(seeded, auth=AirflowAuth())
    token = manager.generate_jwt(User(username="carol", role="viewer"))

    by_cookie = client.get("/status", headers=HTML, cookies={"_token": token})
    assert by_cookie.status_code == 200
    assert cell(by_cookie.text, "run-acme-activity-written") == "3"
    assert "<strong>carol</strong>" in by_cookie.text
    assert client.get("/status", headers={"authorization": f"Bearer {token}"}).status_code == 200

    # Signed with another key, expired, or revoked: treated as no login (Airflow's login page for a browser).
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-" + "y" * 50, algorithm="HS512")
    expired = jwt.encode({**claims, "exp": int(datetime.now(timezone.utc).timestamp()) - 60}, secret, "HS512")
    for bad in (forged, expired, "garbage"):
        refused = client.get("/status", headers=HTML, cookies={"_token": bad}, follow_redirects=False)
        assert refused.status_code == 302, bad
        assert refused.headers["location"].startswith("/auth/login?next=")
    revoked.add(claims["jti"])
    assert client.get("/status", headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_a_user_sees_only_accounts_whose_dag_they_may_read(seeded: Seeded):
    client = client_for(seeded, auth=FakeAuth({"tok-bob": ("bob", {"fbmkto_sync__globex"}), "tok-eve": ("eve", set())}))
    page = get_page(client, "tok-bob")
    assert 'data-account="globex"' in page
    assert 'data-account="acme"' not in page
    assert "activity:acme" not in page
    assert client.get("/status", headers={"authorization": "Bearer tok-eve"}).status_code == 403


# ------------------------------------------------------------------------------------------------ content


def test_counts_budget_and_token_health_match_the_state_db(seeded: Seeded):
    seeded.db.tokens.save(
        "freshbooks_acme",
        TokenPair("access-x", "refresh-x", expires_at=seeded.now + timedelta(hours=5), scope="user:profile:read"),
    )
    page = get_page(client_for(seeded))

    # Last run: the report's counts of run scheduled__1.
    last_run = {(k, s): cell(page, f"run-acme-{k}-{s}") for k in ("activity", "lead", "company", "list")
                for s in ("written", "skipped", "failed")}  # fmt: skip
    assert last_run == {
        ("activity", "written"): "3", ("activity", "skipped"): "1", ("activity", "failed"): "0",
        ("lead", "written"): "2", ("lead", "skipped"): "0", ("lead", "failed"): "0",
        ("company", "written"): "0", ("company", "skipped"): "0", ("company", "failed"): "1",
        ("list", "written"): "0", ("list", "skipped"): "0", ("list", "failed"): "0",
    }  # fmt: skip
    # Last 7 days: the company row touched 10 days ago is not in it.
    assert cell(page, "week-acme-company-written") == "0"
    assert cell(page, "week-acme-activity-written") == "3"
    assert cell(page, "lastrun-acme-status") == "success"
    # The last successful window is the latest one (yesterday), not the older run's.
    row = page.split('data-account="acme"')[1].split('data-account="globex"')[0]
    assert f"{WINDOW[0]:%Y-%m-%d} 00:00 UTC" in row
    assert f"{WINDOW[1]:%Y-%m-%d} 00:00 UTC" in row
    assert "Replay failed (2)" in row  # one skipped + one failed row

    # Marketo: 37 calls of the 900 usable (budget 1000, 100 reserved), shared by both accounts.
    assert (cell(page, "budget-acme-used"), cell(page, "budget-acme-limit")) == ("37", "900")
    assert (cell(page, "budget-globex-used"), cell(page, "budget-globex-limit")) == ("37", "900")

    # Tokens: acme authorized; globex never was, and the page names the exact command.
    assert "authorized; access token valid until" in cell(page, "token-acme")
    assert "never authorized" in cell(page, "token-globex")
    assert cell(page, "token-globex-fix") == "fbmkto authorize --conn-id freshbooks_globex"
    assert 'data-testid="token-acme-fix"' not in page

    # globex has no runs.
    assert cell(page, "week-globex-activity-written") == "0"
    assert "no successful run yet" in page.split('data-account="globex"')[1]


def test_chart_counts_rows_written_per_day_and_kind(seeded: Seeded):
    page = get_page(client_for(seeded))
    chart = page.split('data-testid="chart-acme"')[1].split("</svg>")[0]
    bars = {
        (day, kind): int(n)
        for day, kind, n in re.findall(r'data-day="([\d-]+)" data-kind="(\w+)" data-count="(\d+)"', chart)
    }
    today = seeded.now.date().isoformat()
    three_days_ago = (seeded.now - timedelta(days=3)).date().isoformat()
    assert len({day for day, _ in bars}) == 14
    assert bars[(today, "activity")] == 3
    assert bars[(today, "lead")] == 1  # ann today; bob was written three days ago
    assert bars[(three_days_ago, "lead")] == 1
    assert bars[(today, "company")] == 0  # failed rows are not "written"
    ten_days_ago = (seeded.now - timedelta(days=10)).date().isoformat()
    assert bars[(ten_days_ago, "company")] == 1  # in the 14-day chart, though not in the 7-day counts
    assert sum(bars.values()) == 6


def test_data_is_escaped_and_the_page_allows_no_script(seeded: Seeded):
    add_rows(
        seeded.db,
        "acme",
        "scheduled__2",
        [
            (
                'lead:acme:"><script>alert(1)</script>@evil.io',
                "lead",
                "skipped",
                "1003: <img src=x onerror=alert(2)> & 'quotes'",
            )
        ],
    )
    response = client_for(seeded).get("/status", headers={**HTML, "authorization": "Bearer tok-alice"})
    page = response.text
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "1003: &lt;img src=x onerror=alert(2)&gt; &amp; &#x27;quotes&#x27;" in page
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_failures_table_filters_by_kind_and_status(seeded: Seeded):
    client = client_for(seeded)
    everything = get_page(client)
    assert everything.count('data-testid="failure-row"') == 2
    assert "1003: activity type fbInvoiceSent is not approved" in everything
    assert "HTTP 503 from Marketo; retried 5 times" in everything

    skipped = get_page(client, query="?status=skipped")
    assert skipped.count('data-testid="failure-row"') == 1
    assert "activity:acme:4" in skipped
    companies = get_page(client, query="?kind=company&account=acme")
    assert companies.count('data-testid="failure-row"') == 1
    assert "company:acme:bigco" in companies
    none = get_page(client, query="?kind=list")
    assert 'data-testid="no-failures"' in none
    bogus = get_page(client, query="?kind=<b>&status=nope&account=zzz")  # ignored, never echoed
    assert bogus.count('data-testid="failure-row"') == 2
    assert "<b>" not in bogus


# ------------------------------------------------------------------------------------------------- replay


def test_replay_triggers_a_run_through_airflows_api_with_the_users_token(seeded: Seeded, fake_api: FakeAirflowApi):
    client = client_for(seeded, api=fake_api)
    csrf = form_token(get_page(client))
    assert client.cookies.get(CSRF_COOKIE) == csrf

    response = client.post(
        "/status/replay",
        data={"account": "acme", "csrf": csrf},
        headers={**HTML, "authorization": "Bearer tok-alice", "origin": "http://airflow.test"},
    )
    assert response.status_code == 200
    assert "Replay queued: run manual__2025-03-02 of fbmkto_sync__acme is queued" in cell(response.text, "notice")
    (sent,) = fake_api.requests
    assert sent["path"] == "/api/v2/dags/fbmkto_sync__acme/dagRuns"
    assert sent["authorization"] == "Bearer tok-alice"
    assert sent["content_type"] == "application/json"
    assert sent["json"]["conf"] == {"replay_failed": True}
    assert sent["json"]["logical_date"] is None
    assert "alice" in sent["json"]["note"]


def test_replay_is_refused_without_csrf_token_from_another_origin_or_for_an_unreadable_account(
    seeded: Seeded, fake_api: FakeAirflowApi
):
    client = client_for(seeded, api=fake_api)
    csrf = form_token(get_page(client))
    auth = {"authorization": "Bearer tok-alice"}
    assert client.post("/status/replay", data={"account": "acme", "csrf": "w" * 43}, headers=auth).status_code == 403
    assert client.post("/status/replay", data={"account": "acme"}, headers=auth).status_code == 403
    evil = client.post(
        "/status/replay", data={"account": "acme", "csrf": csrf}, headers={**auth, "origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    bob = client.post(
        "/status/replay", data={"account": "acme", "csrf": csrf}, headers={"authorization": "Bearer tok-bob"}
    )
    assert bob.status_code == 404  # bob may not read acme's DAG
    assert fake_api.requests == []


def test_replay_shows_airflows_refusal(seeded: Seeded, fake_api: FakeAirflowApi):
    fake_api.answer_status, fake_api.answer = 403, {"detail": "Forbidden"}
    client = client_for(seeded, api=fake_api)
    csrf = form_token(get_page(client))
    response = client.post(
        "/status/replay", data={"account": "acme", "csrf": csrf}, headers={"authorization": "Bearer tok-alice"}
    )
    assert response.status_code == 403
    notice = cell(response.text, "notice")
    assert "not started" in notice
    assert "does not allow you to trigger fbmkto_sync__acme" in notice


def test_check_token_reports_the_probe_and_the_fix(seeded: Seeded):
    from airflow_provider_fbmkto.plugins.status_data import TokenHealth

    asked: list[str] = []

    def probe(conn_id: str) -> TokenHealth:
        asked.append(conn_id)
        return TokenHealth("error", "FreshBooks answered 401", f"fbmkto authorize --conn-id {conn_id}")

    client = client_for(seeded, probe=probe)
    csrf = form_token(get_page(client))
    response = client.post(
        "/status/check-token", data={"account": "globex", "csrf": csrf}, headers={"authorization": "Bearer tok-alice"}
    )
    assert asked == ["freshbooks_globex"]
    assert cell(response.text, "notice") == (
        "FreshBooks connection freshbooks_globex: FreshBooks answered 401 — run: fbmkto authorize --conn-id "
        "freshbooks_globex"
    )


# ------------------------------------------------------------------------------------------ wiring in Airflow


def test_api_base_url_is_this_server_unless_overridden():
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("10.0.0.5", 8080),
        "root_path": "/airflow/fbmkto",
        "path": "/airflow/fbmkto/status",
        "headers": [(b"host", b"airflow.example.com")],
        "query_string": b"",
    }
    request = Request(scope)
    assert api_base_url(request, {}) == "http://10.0.0.5:8080/airflow"
    assert api_base_url(request, {"FBMKTO_AIRFLOW_API_URL": "http://api:8080/"}) == "http://api:8080"


def test_plugin_mounts_the_page_and_links_it_into_the_ui():
    from airflow_provider_fbmkto.plugins.fbmkto_plugin import FbmktoPlugin, create_app

    (view,) = FbmktoPlugin.external_views
    assert view["href"].endswith("/fbmkto/status")
    assert view["url_route"] == "fbmkto-status"
    assert view["destination"] == "nav"
    paths = {getattr(r, "path", None) for r in create_app().routes}
    assert {"/status", "/status/replay", "/webhooks/freshbooks/{account}"} <= paths


def test_check_token_probe_asks_freshbooks_without_spending_the_refresh_token(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """The real probe against the FreshBooks emulator: users/me with the stored access token, no token call."""
    import json

    from cryptography.fernet import Fernet

    from airflow_provider_fbmkto.cli import main
    from airflow_provider_fbmkto.plugins.status_data import probe_token
    from airflow_provider_fbmkto.testing import FreshBooksEmulator

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("AIRFLOW_CONN_FBMKTO_STATE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "s.db")}))
    with FreshBooksEmulator() as fb:
        monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", fb.conn_json())
        never = probe_token("freshbooks_acme", state_conn_id="fbmkto_state")
        assert never.level == "error"
        assert never.fix == "fbmkto authorize --conn-id freshbooks_acme"

        assert main(["authorize", "--conn-id", "freshbooks_acme", "--code", fb.issue_code()]) == 0
        token_calls = len(fb.token_calls())
        ok = probe_token("freshbooks_acme", state_conn_id="fbmkto_state")
        assert ok.level == "ok"
        assert ok.fix is None
        assert ok.message.startswith("Connected to FreshBooks as ")

        fb.expire_access_tokens()
        expired = probe_token("freshbooks_acme", state_conn_id="fbmkto_state")
        assert expired.level == "error"
        assert expired.fix == "fbmkto authorize --conn-id freshbooks_acme"
        assert len(fb.token_calls()) == token_calls  # no refresh was spent

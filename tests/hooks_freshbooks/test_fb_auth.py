"""OAuth: authorization through the CLI, token reuse and refresh, spent/revoked tokens, connection parsing."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import authorize, conn_json_without, grant, hook, stored_pair

from airflow_provider_fbmkto import cli
from airflow_provider_fbmkto.exceptions import AuthError, ConfigError, ReauthorizationRequired
from airflow_provider_fbmkto.hooks.freshbooks_auth import DEFAULT_SCOPES, account_id_from_identity
from airflow_provider_fbmkto.state import StateDB, TokenPair
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

CLIENTS = 3


def _add_clients(emu: FreshBooksEmulator, n: int = CLIENTS) -> None:
    for i in range(n):
        emu.add_client(email=f"c{i}@example.com")


def test_cli_authorize_with_code_stores_pair_and_reports_account(
    emulator: FreshBooksEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = emulator.issue_code()
    assert cli.main(["authorize", "--conn-id", "freshbooks_default", "--code", code]) == 0
    out = capsys.readouterr().out
    assert "ACME01" in out
    assert "Acme Consulting" in out
    pair = stored_pair()
    # The stored pair is the one the emulator issued, and nothing of it was printed.
    assert pair.access_token in emulator.oauth.access
    assert pair.refresh_token not in out
    assert pair.access_token not in out
    assert code not in out
    assert set(pair.scope.split()) == set(DEFAULT_SCOPES)
    exchange = emulator.token_calls()[-1]
    assert exchange.body is not None
    assert grant(exchange) == "authorization_code"
    assert exchange.body is not None
    assert exchange.body["redirect_uri"] == emulator.redirect_uri


def test_cli_authorize_interactive_follows_authorize_url_and_checks_state(
    emulator: FreshBooksEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # First pass: let the "user" open the printed URL; the emulator redirects to redirect_uri?code=…&state=…
    printed: list[str] = []

    class Stdin:
        def readline(self) -> str:  # called after the URL was printed
            url = next(line.strip() for line in capsys.readouterr().out.splitlines() if "/oauth/authorize?" in line)
            printed.append(url)
            location = requests.get(url, allow_redirects=False, timeout=5).headers["location"]
            return location + "\n"

    monkeypatch.setattr("sys.stdin", Stdin())
    assert cli.main(["authorize"]) == 0
    query = parse_qs(urlsplit(printed[0]).query)
    assert urlsplit(printed[0]).netloc == urlsplit(emulator.url).netloc  # emulator host, not auth.freshbooks.com
    assert query["client_id"] == ["fb-client-id"]
    assert query["response_type"] == ["code"]
    assert query["scope"][0].split() == list(DEFAULT_SCOPES)
    assert query["state"][0]
    assert StateDB.from_airflow().tokens.load("freshbooks_default") is not None

    # A pasted URL whose state differs is refused and stores nothing new.
    before = len(emulator.token_calls())
    monkeypatch.setattr("sys.stdin", io.StringIO("https://localhost/fbmkto/callback?code=abc&state=forged\n"))
    assert cli.main(["authorize"]) == 1
    assert "state does not match" in capsys.readouterr().err
    assert len(emulator.token_calls()) == before


def test_cli_authorize_with_bad_code_explains(emulator: FreshBooksEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["authorize", "--code", "not-a-code"]) == 1
    err = capsys.readouterr().err
    assert "authorization code" in err
    assert "fbmkto authorize --conn-id freshbooks_default" in err
    assert StateDB.from_airflow().tokens.load("freshbooks_default") is None


def test_access_token_is_reused_until_near_expiry(authorized: FreshBooksEmulator) -> None:
    _add_clients(authorized)
    h = hook()
    assert len(list(h.iter_clients())) == CLIENTS
    assert len(list(h.iter_clients())) == CLIENTS
    assert len(authorized.token_calls()) == 1  # only the code exchange
    # 4 minutes of life left (< 5): the next call refreshes first, and saves the new pair.
    tokens = StateDB.from_airflow().tokens
    old = stored_pair()
    tokens.save("freshbooks_default", TokenPair(old.access_token, old.refresh_token, _in(240), old.scope))
    h2 = hook()
    assert len(list(h2.iter_clients())) == CLIENTS
    assert [grant(c) for c in authorized.token_calls()] == ["authorization_code", "refresh_token"]
    new = stored_pair()
    assert new.refresh_token != old.refresh_token
    assert not new.expires_within(3600)


def _in(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def test_401_refreshes_once_and_retries(authorized: FreshBooksEmulator) -> None:
    _add_clients(authorized)
    h = hook()
    list(h.iter_clients())
    authorized.expire_access_tokens()  # the server kills the token; our stored expiry still looks fine
    assert len(list(h.iter_clients())) == CLIENTS
    grants = [grant(c) for c in authorized.token_calls()]
    assert grants == ["authorization_code", "refresh_token"]
    statuses = [c.status for c in authorized.calls if c.path.endswith("/users/clients")]
    assert statuses == [200, 401, 200]


def test_401_after_refresh_is_an_auth_error_not_a_loop(authorized: FreshBooksEmulator) -> None:
    authorized.inject_fault("401", count=2, path_prefix="/accounting/")
    with pytest.raises(AuthError) as err:
        list(hook().iter_clients())
    assert "fbmkto authorize --conn-id freshbooks_default" in str(err.value)
    assert len(authorized.token_calls()) == 2  # exchange + exactly one refresh


def test_revoked_refresh_token_asks_to_reauthorize(authorized: FreshBooksEmulator) -> None:
    authorized.revoke_refresh_tokens()
    authorized.expire_access_tokens()
    before = len(authorized.token_calls())
    with pytest.raises(ReauthorizationRequired) as err:
        list(hook().iter_clients())
    assert str(err.value) == (
        "FreshBooks refresh token for connection 'freshbooks_default' is spent or revoked; re-authorize: "
        "fbmkto authorize --conn-id freshbooks_default"
    )
    assert len(authorized.token_calls()) == before + 1  # one refresh attempt, no retry loop


def test_a_refused_refresh_is_remembered_for_the_status_page_until_reauthorized(
    authorized: FreshBooksEmulator,
) -> None:
    from airflow_provider_fbmkto.plugins.status_data import token_health

    db = StateDB.from_airflow()
    now = datetime.now(timezone.utc)
    assert token_health(db, "freshbooks_default", now=now).level == "ok"
    authorized.revoke_refresh_tokens()
    authorized.expire_access_tokens()
    with pytest.raises(ReauthorizationRequired):
        list(hook().iter_clients())

    calls = len(authorized.calls)
    health = token_health(db, "freshbooks_default", now=now)
    assert health.level == "error"
    assert "spent or revoked" in health.message
    assert health.fix == "fbmkto authorize --conn-id freshbooks_default"
    assert len(authorized.calls) == calls  # read from the state DB, FreshBooks not asked

    authorize(authorized)  # a new authorization clears it
    assert token_health(db, "freshbooks_default", now=now).level == "ok"


def test_spent_refresh_token_from_another_store_is_reauthorization(authorized: FreshBooksEmulator) -> None:
    # Someone refreshed with the stored refresh token behind our back (e.g. a restored DB backup).
    pair = stored_pair()
    requests.post(
        f"{authorized.url}/auth/oauth/token",
        json={
            "grant_type": "refresh_token",
            "client_id": "fb-client-id",
            "client_secret": "fb-client-secret",
            "refresh_token": pair.refresh_token,
        },
        timeout=5,
    ).raise_for_status()
    authorized.expire_access_tokens()
    with pytest.raises(ReauthorizationRequired, match="spent or revoked"):
        list(hook().iter_clients())


def test_no_stored_pair(emulator: FreshBooksEmulator) -> None:
    with pytest.raises(ReauthorizationRequired) as err:
        list(hook().iter_clients())
    assert "fbmkto authorize --conn-id freshbooks_default" in str(err.value)
    assert emulator.calls == []


def test_test_connection_never_spends_the_refresh_token(authorized: FreshBooksEmulator) -> None:
    ok, message = hook().test_connection()
    assert ok
    assert "owner@acme-consulting.example" in message
    assert "ACME01" in message
    tokens = StateDB.from_airflow().tokens
    old = stored_pair()
    tokens.save("freshbooks_default", TokenPair(old.access_token, old.refresh_token, _in(-60), old.scope))
    ok, message = hook().test_connection()
    assert not ok
    assert "expired" in message
    assert "fbmkto authorize --conn-id freshbooks_default" in message
    authorized.expire_access_tokens()
    tokens.save("freshbooks_default", old)
    ok, message = hook().test_connection()
    assert not ok
    assert "401" in message
    assert len(authorized.token_calls()) == 1


def test_test_connection_without_pair_or_connection(
    emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = hook().test_connection()
    assert not ok
    assert "fbmkto authorize" in message
    ok, message = hook(freshbooks_conn_id="freshbooks_nope").test_connection()
    assert not ok
    assert "freshbooks_nope" in message


def test_account_id_discovered_from_users_me(emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_DEFAULT", conn_json_without(emulator, "account_id"))
    authorize(emulator)
    emulator.add_client(email="x@example.com")
    h = hook()
    assert [c.email for c in h.iter_clients()] == ["x@example.com"]
    assert h.account_id == "ACME01"
    assert any(c.path == "/auth/api/v1/users/me" for c in emulator.calls)


def test_account_id_from_identity_with_several_businesses() -> None:
    me = {
        "business_memberships": [
            {"business": {"id": 1, "name": "One", "account_id": "AAA"}},
            {"business": {"id": 2, "name": "Two", "account_id": "BBB"}},
        ]
    }
    with pytest.raises(ConfigError) as err:
        account_id_from_identity(me, "fb")
    assert "AAA (One)" in str(err.value)
    assert "BBB (Two)" in str(err.value)
    assert "account_id" in str(err.value)
    assert account_id_from_identity({"business_memberships": me["business_memberships"][:1]}, "fb") == "AAA"


def test_unknown_extra_is_a_config_error(emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_DEFAULT", emulator.conn_json(redirect_url="https://typo"))
    with pytest.raises(ConfigError, match="'redirect_url'"):
        hook().creds  # noqa: B018


def test_ui_prefixed_extras_are_accepted(emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = conn_json_without(emulator, "redirect_uri", extra__freshbooks__redirect_uri="https://fb.example/cb")
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_DEFAULT", conn)
    creds = hook().creds
    assert creds.redirect_uri == "https://fb.example/cb"
    assert creds.base_url == emulator.url
    assert creds.auth_url == emulator.url
    assert creds.scopes == DEFAULT_SCOPES
    assert "fb-client-secret" not in repr(creds)


def test_real_host_uses_the_auth_site(monkeypatch: pytest.MonkeyPatch, airflow_env: Path) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FRESHBOOKS_REAL",
        '{"conn_type": "freshbooks", "login": "id", "password": "secret", '
        '"extra": {"redirect_uri": "https://a.example/cb", "scopes": "user:profile:read,user:clients:read"}}',
    )
    h = hook(freshbooks_conn_id="freshbooks_real")
    assert h.creds.base_url == "https://api.freshbooks.com"
    url = h.authorize_url("st")
    assert url.startswith("https://auth.freshbooks.com/oauth/authorize?")
    assert parse_qs(urlsplit(url).query)["scope"] == ["user:profile:read user:clients:read"]


def test_missing_connection_names_the_fix(airflow_env: Path) -> None:
    with pytest.raises(ConfigError) as err:
        hook(freshbooks_conn_id="freshbooks_acme").creds  # noqa: B018
    text = str(err.value)
    assert "'freshbooks_acme'" in text
    assert "airflow connections add freshbooks_acme" in text
    assert "AIRFLOW_CONN_FRESHBOOKS_ACME" in text


def test_redirect_uri_with_query_is_refused(emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FRESHBOOKS_DEFAULT", conn_json_without(emulator, "redirect_uri", redirect_uri="https://x/cb?a=1")
    )
    with pytest.raises(ConfigError, match="query string"):
        hook().creds  # noqa: B018

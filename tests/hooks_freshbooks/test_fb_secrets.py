"""No token, code, client secret or verifier reaches logs, output, exception messages or the state DB file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import hook
from fastapi import FastAPI

from airflow_provider_fbmkto import cli
from airflow_provider_fbmkto.exceptions import FbmktoError
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.server import ThreadedServer

ACCOUNTS = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
    segments: {paid_list_id: 1, overdue_list_id: 2}
    webhooks: true
"""


def test_secrets_stay_out_of_logs_output_errors_and_db(
    emulator: FreshBooksEmulator,
    airflow_env: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_fbmkto.plugins.fbmkto_plugin import create_app

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", emulator.conn_json())
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_DEFAULT", emulator.conn_json())
    # The receiver takes deliveries only for accounts of the accounts config with ``webhooks: true``.
    config = airflow_env / "fbmkto_accounts.yaml"
    config.write_text(ACCOUNTS)
    monkeypatch.setenv("FBMKTO_CONFIG", str(config))
    messages: list[str] = []
    code = emulator.issue_code()
    assert cli.main(["-v", "authorize", "--code", code, "--conn-id", "freshbooks_acme"]) == 0
    emulator.add_client(email="s@example.com")
    h = hook(freshbooks_conn_id="freshbooks_acme")
    list(h.iter_clients())
    emulator.expire_access_tokens()  # 401 -> refresh
    list(h.iter_clients())
    messages.append(h.test_connection()[1])

    api = FastAPI()
    api.mount("/fbmkto", create_app())
    with ThreadedServer(api) as server:
        url = f"{server.url}/fbmkto/webhooks/freshbooks/acme"
        assert cli.main(["webhooks", "register", "--conn-id", "freshbooks_acme", "--url", url, "--wait", "10"]) == 0
        emulator.add_client(email="t@example.com")
        assert emulator.wait_for_webhooks()

    emulator.inject_fault("401", count=2, path_prefix="/accounting/")
    for action in (
        lambda: list(h.iter_clients()),
        lambda: hook(freshbooks_conn_id="freshbooks_acme").exchange_code(code),
    ):
        with pytest.raises(FbmktoError) as err:
            action()
        messages.append(str(err.value))
    emulator.revoke_refresh_tokens()
    emulator.expire_access_tokens()
    with pytest.raises(FbmktoError) as err:
        list(hook(freshbooks_conn_id="freshbooks_acme").iter_clients())
    messages.append(str(err.value))
    assert "re-authorize" in messages[-1]

    secrets = {code, "fb-client-secret", *emulator.oauth.access, *emulator.oauth.refresh}
    secrets |= {cb.verifier for cb in emulator.webhooks.callbacks.values()}
    assert len(secrets) >= 8  # code, secret, 3 access + 3 refresh tokens, 3 verifiers
    out = capsys.readouterr()
    db_bytes = b"".join(p.read_bytes() for p in (airflow_env / "fbmkto").iterdir() if p.is_file())
    assert len(db_bytes) > 0
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in out.out
        assert secret not in out.err
        assert all(secret not in m for m in messages)
        assert secret.encode() not in db_bytes

"""Webhooks: registration and verification through the CLI, the HMAC receiver, storing each delivery once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import authorize, hook
from fastapi import FastAPI

from airflow_provider_fbmkto import cli
from airflow_provider_fbmkto.hooks.freshbooks_webhooks import signature, signed_message
from airflow_provider_fbmkto.plugins.fbmkto_plugin import FbmktoPlugin, create_app
from airflow_provider_fbmkto.state import StateDB, WebhookEvent
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.server import ThreadedServer

HEADER = "X-FreshBooks-Hmac-SHA256"
ACCOUNT = """\
  - name: {name}
    freshbooks_conn_id: freshbooks_{name}
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
    segments: {{paid_list_id: 1, overdue_list_id: 2}}
    webhooks: {webhooks}
"""


@pytest.fixture
def receiver(emulator: FreshBooksEmulator, monkeypatch: pytest.MonkeyPatch, airflow_env: Path) -> Iterator[str]:
    """The plugin app mounted at /fbmkto as the api-server does; account 'acme' (``webhooks: true``) uses
    connection freshbooks_acme, 'quiet' (``webhooks: false``) freshbooks_quiet."""
    config = airflow_env / "fbmkto_accounts.yaml"
    config.write_text(
        "accounts:\n" + ACCOUNT.format(name="acme", webhooks="true") + ACCOUNT.format(name="quiet", webhooks="false")
    )
    monkeypatch.setenv("FBMKTO_CONFIG", str(config))
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", emulator.conn_json())
    authorize(emulator, "freshbooks_acme")
    api = FastAPI()
    api.mount("/fbmkto", create_app())
    with ThreadedServer(api) as server:
        yield f"{server.url}/fbmkto/webhooks/freshbooks/acme"


def _pending(account: str = "acme") -> list[WebhookEvent]:
    return StateDB.from_airflow().events.pending(account)


def _form(emu: FreshBooksEmulator, name: str = "invoice.create", object_id: int = 42) -> dict[str, str]:
    return emu.webhooks.event_fields(name, object_id)


def _post(url: str, fields: dict[str, str], sig: str | None = None) -> requests.Response:
    headers = {HEADER: sig} if sig is not None else {}
    return requests.post(url, data=fields, headers=headers, timeout=5)


def test_plugin_declares_the_app() -> None:
    assert FbmktoPlugin.name == "fbmkto"
    (entry,) = FbmktoPlugin.fastapi_apps
    assert entry["url_prefix"] == "/fbmkto"
    assert entry["name"] == "fbmkto"


def test_register_verify_and_receive_end_to_end(
    emulator: FreshBooksEmulator, receiver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "webhooks",
            "register",
            "--conn-id",
            "freshbooks_acme",
            "--url",
            receiver,
            "--events",
            "invoice",
            "--wait",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    (callback,) = emulator.webhooks.callbacks.values()
    assert callback.verified
    assert callback.event == "invoice"
    assert callback.uri == receiver
    assert f"callback {callback.id}: verified" in out
    assert callback.verifier not in out

    # A real change: FreshBooks signs the delivery with the callback's verifier; the receiver stores it.
    client = emulator.add_client(email="w@example.com")
    invoice = emulator.add_invoice(customerid=client["id"], amount="10.00")
    assert emulator.wait_for_webhooks()
    delivery = emulator.webhooks.deliveries[-1]
    assert delivery.status == 200
    assert delivery.fields["name"] == "invoice.create"
    (event,) = _pending()
    assert (event.name, event.object_id, event.account_id) == ("invoice.create", str(invoice["id"]), "ACME01")

    # The same delivery again (FreshBooks retries): acknowledged, not stored twice.
    again = emulator.deliver_webhook(receiver, "invoice.create", invoice["id"])
    assert again.status_code == 200
    assert again.json()["message"] == "duplicate"
    assert len(_pending()) == 1

    # list and delete through the CLI
    assert cli.main(["webhooks", "list", "--conn-id", "freshbooks_acme"]) == 0
    assert f"{callback.id}\tinvoice\tverified\t{receiver}" in capsys.readouterr().out
    assert cli.main(["webhooks", "delete", "--conn-id", "freshbooks_acme", "--id", str(callback.id)]) == 0
    assert emulator.webhooks.callbacks == {}


def test_register_without_verification_says_how_to_finish(
    emulator: FreshBooksEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", emulator.conn_json())
    authorize(emulator, "freshbooks_acme")
    unreachable = "http://127.0.0.1:9/fbmkto/webhooks/freshbooks/acme"
    code = cli.main(
        [
            "webhooks",
            "register",
            "--conn-id",
            "freshbooks_acme",
            "--url",
            unreachable,
            "--events",
            "payment",
            "--wait",
            "0",
        ]
    )
    assert code == 1
    (callback,) = emulator.webhooks.callbacks.values()
    assert not callback.verified
    assert f"fbmkto webhooks verify --conn-id freshbooks_acme --id {callback.id}" in capsys.readouterr().out


def test_connection_verifier_authenticates(
    emulator: FreshBooksEmulator, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", emulator.conn_json(webhook_verifier="conn-verifier-123"))
    fields = _form(emulator, "payment.create", 7)
    response = _post(receiver, fields, emulator.sign_webhook(fields, "conn-verifier-123"))
    assert response.status_code == 200
    assert response.json()["message"] == "stored"
    assert [(e.name, e.object_id) for e in _pending()] == [("payment.create", "7")]


def test_forged_and_unsigned_deliveries_are_rejected(
    emulator: FreshBooksEmulator, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", emulator.conn_json(webhook_verifier="conn-verifier-123"))
    fields = _form(emulator)
    assert _post(receiver, fields, emulator.sign_webhook(fields, "someone-elses")).status_code == 401
    assert _post(receiver, fields).status_code == 401
    tampered = dict(fields, object_id="43")
    assert _post(receiver, tampered, emulator.sign_webhook(fields, "conn-verifier-123")).status_code == 401
    assert _pending() == []


def test_unverified_callback_verifier_does_not_authenticate(emulator: FreshBooksEmulator, receiver: str) -> None:
    # The verify request arrived (stored, unconfirmed) but nobody confirmed it with FreshBooks.
    hook(freshbooks_conn_id="freshbooks_acme").register_webhook("client", receiver)
    assert emulator.wait_for_webhooks()
    response = emulator.deliver_webhook(receiver, "client.create", 5)
    assert response.status_code == 401
    assert _pending() == []


def test_content_type_size_and_account_checks(emulator: FreshBooksEmulator, receiver: str) -> None:
    fields = _form(emulator)
    sig = signature(signed_message(fields.items()), "x")
    assert requests.post(receiver, json=fields, headers={HEADER: sig}, timeout=5).status_code == 415
    big = dict(fields, padding="x" * (70 * 1024))
    assert _post(receiver, big, sig).status_code == 413
    unknown = receiver.replace("/acme", "/nobody")
    assert _post(unknown, fields, sig).status_code == 404
    assert _post(receiver.replace("/acme", "/Bad-Name"), fields, sig).status_code == 404
    assert _pending() == []


def test_webhook_methods_of_the_hook(emulator: FreshBooksEmulator, receiver: str) -> None:
    h = hook(freshbooks_conn_id="freshbooks_acme")
    created = h.register_webhook("payment.create", receiver)
    assert emulator.wait_for_webhooks()
    assert [w.id for w in h.list_webhooks()] == [created.id]
    assert not created.verified
    verifier = emulator.webhooks.callbacks[created.id].verifier
    assert h.verify_webhook(created.id, verifier).verified
    h.delete_webhook(created.id)
    assert list(h.list_webhooks()) == []


def test_accounts_without_webhooks_and_unconfigured_receivers_store_nothing(
    emulator: FreshBooksEmulator,
    receiver: str,
    airflow_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", emulator.conn_json(webhook_verifier="conn-verifier-123"))
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_QUIET", emulator.conn_json(webhook_verifier="conn-verifier-123"))
    fields = _form(emulator, "invoice.sendByEmail", 9)
    sig = emulator.sign_webhook(fields, "conn-verifier-123")
    caplog.set_level(logging.INFO, logger="airflow_provider_fbmkto.plugins.webhooks")
    quiet = _post(receiver.replace("/acme", "/quiet"), fields, sig)
    assert (quiet.status_code, quiet.json()["message"]) == (403, "webhooks are off for this account")
    assert "refused a delivery for quiet: webhooks are off for it (set webhooks: true" in caplog.text
    # callback.verify too: FreshBooks' verifier is not stored for an account that consumes no events.
    verify = {**_form(emulator, "callback.verify", 3), "verifier": "v-1"}
    assert _post(receiver.replace("/acme", "/quiet"), verify).status_code == 403
    assert _pending("quiet") == []
    assert _post(receiver, fields, sig).status_code == 200  # the same delivery for acme is taken

    monkeypatch.setenv("FBMKTO_CONFIG", str(airflow_env / "nowhere.yaml"))
    fresh = FastAPI()
    fresh.mount("/fbmkto", create_app())
    with ThreadedServer(fresh) as server:
        url = f"{server.url}/fbmkto/webhooks/freshbooks/acme"
        assert _post(url, dict(fields, object_id="10"), sig).status_code == 404
    assert "delivery for unknown account acme: no accounts config at" in caplog.text
    assert [e.object_id for e in _pending()] == ["9"]


def test_an_event_of_another_freshbooks_account_is_refused(
    emulator: FreshBooksEmulator,
    receiver: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FRESHBOOKS_ACME",
        emulator.conn_json(webhook_verifier="conn-verifier-123", account_id="OTHER9"),
    )
    fields = _form(emulator, "invoice.sendByEmail", 9)
    caplog.set_level(logging.INFO, logger="airflow_provider_fbmkto.plugins.webhooks")
    response = _post(receiver, fields, emulator.sign_webhook(fields, "conn-verifier-123"))
    assert (response.status_code, response.json()["message"]) == (403, "event of another FreshBooks account")
    assert (
        f"refused a delivery for acme: it is for FreshBooks account {fields['account_id']}; "
        "connection freshbooks_acme reads account OTHER9"
    ) in caplog.text
    assert "conn-verifier-123" not in caplog.text
    assert _pending() == []

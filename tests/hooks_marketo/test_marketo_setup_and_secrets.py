"""``fbmkto setup-marketo``, ``test_connection`` and the no-secrets-anywhere rule, through the wire."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_fbmkto.cli import main
from airflow_provider_fbmkto.exceptions import AuthError
from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_auth import TOKENS
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

SECRET = "mkto-client-secret"  # the emulator's
CHANGES = ("/activities/external/type.json", "/approve.json", "/attributes/create.json", "/leads/schema/fields.json")

MakeMarketo = Callable[..., MarketoEmulator]


def changes(emu: MarketoEmulator) -> list[str]:
    return [c.path for c in emu.rest_calls() if c.method == "POST" and c.path.endswith(CHANGES)]


def test_setup_marketo_creates_once_then_has_nothing_to_do(
    make_marketo: MakeMarketo, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = make_marketo(company_fields={"fbPaymentTerms": "string"})

    assert main(["setup-marketo", "--conn-id", "marketo_default"]) == 0
    first = capsys.readouterr().out
    types = {t["apiName"]: t for t in emu.activity_types()}
    assert set(types) == {"fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"}
    assert {t["status"] for t in types.values()} == {"approved"}
    assert types["fbInvoiceSent"]["primaryAttribute"]["apiName"] == "invoiceNumber"
    assert types["fbPaymentReceived"]["primaryAttribute"]["apiName"] == "paymentId"
    assert {a["apiName"] for a in types["fbInvoiceOverdue"]["attributes"]} == {
        "fbAccountId",
        "amount",
        "currency",
        "dueDate",
        "daysOverdue",
    }
    lead_fields = {f["name"]: f["dataType"] for f in MarketoHook().describe_leads()}
    assert (lead_fields["fbPaymentStatus"], lead_fields["fbOutstandingBalance"], lead_fields["fbLastPaymentDate"]) == (
        "string",
        "currency",
        "date",
    )
    # Each type: created with its primary attribute only, then given its attributes, then approved.
    type_calls = [c.path.removeprefix("/rest/v1/activities/external/") for c in emu.rest_calls() if "/type" in c.path]
    assert type_calls[0] == "types.json"
    for i, name in enumerate(("fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue")):
        assert type_calls[1 + 3 * i : 4 + 3 * i] == [
            "type.json",
            f"type/{name}/attributes/create.json",
            f"type/{name}/approve.json",
        ]
    creates = [c for c in emu.rest_calls() if c.path.endswith("/external/type.json")]
    assert all("attributes" not in (c.body or {}) for c in creates)
    assert len(changes(emu)) == 3 + 3 + 3 + 1  # creates, attribute calls, approvals, one lead-field call
    assert "created activity type fbInvoiceSent" in first
    for missing in (
        "fbOutstandingBalance",
        "fbInvoiceCount",
        "fbPaymentStatus",
        "fbLastPaymentDate",
        "fbAverageDaysToPay",
    ):
        assert missing in first
    assert "  fbPaymentTerms" not in first  # it exists

    before = len(changes(emu))
    assert main(["setup-marketo", "--conn-id", "marketo_default"]) == 0
    second = capsys.readouterr().out
    assert len(changes(emu)) == before
    assert "nothing to do" in second
    assert "fbAverageDaysToPay" in second  # still listed for the admin


def test_setup_marketo_completes_a_half_done_schema(
    marketo: MarketoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    marketo.create_activity_type_direct("fbInvoiceSent", "Invoice Sent", approve=False)  # draft, no attributes
    assert main(["setup-marketo"]) == 0
    out = capsys.readouterr().out
    assert "added attributes fbAccountId, amount, currency, dueDate to fbInvoiceSent" in out
    assert "approved activity type fbInvoiceSent" in out
    sent = next(t for t in marketo.activity_types() if t["apiName"] == "fbInvoiceSent")
    assert sent["status"] == "approved"
    assert {a["apiName"] for a in sent["attributes"]} == {"fbAccountId", "amount", "currency", "dueDate"}


def test_setup_marketo_gives_an_approved_type_its_missing_attributes_then_rests(
    marketo: MarketoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    marketo.create_activity_type_direct(
        "fbPaymentReceived",
        "Payment Received",
        primary_attribute=("paymentId", "Payment ID", "string"),
        attributes=[("amount", "Amount", "float")],
    )
    assert main(["setup-marketo"]) == 0
    out = capsys.readouterr().out
    assert "added attributes fbAccountId, currency, invoiceNumber to fbPaymentReceived" in out
    assert "approved activity type fbPaymentReceived" in out
    paid = next(t for t in marketo.activity_types() if t["apiName"] == "fbPaymentReceived")
    assert (paid["status"], len(paid["attributes"])) == ("approved", 4)
    before = len(changes(marketo))
    assert main(["setup-marketo"]) == 0
    assert len(changes(marketo)) == before
    assert "nothing to do" in capsys.readouterr().out


def test_setup_marketo_provisions_the_activity_types_the_config_names(
    make_marketo: MakeMarketo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = make_marketo()
    make_marketo(conn_id="marketo_other")
    config = tmp_path / "accounts.yaml"
    config.write_text(
        "defaults: {schedule: '@daily', start_date: '2025-01-01', marketo_conn_id: marketo_default}\n"
        "accounts:\n"
        "  - {name: acme, freshbooks_conn_id: fb_acme, activity_types: {invoice_sent: acmeInvoiceSent}}\n"
        "  - {name: beta, freshbooks_conn_id: fb_beta, activity_types: {invoice_sent: betaInvoiceSent}}\n"
        "  - name: gamma\n    freshbooks_conn_id: fb_gamma\n    marketo_conn_id: marketo_other\n"
        "    activity_types: {payment_received: gammaPaid}\n"
    )
    assert main(["setup-marketo", "--config", str(config)]) == 0
    assert "for accounts acme, beta of" in capsys.readouterr().out
    types = {t["apiName"]: t for t in emu.activity_types()}
    assert set(types) == {"acmeInvoiceSent", "betaInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"}
    assert {t["status"] for t in types.values()} == {"approved"}
    assert types["acmeInvoiceSent"]["name"] == "Invoice Sent (acmeInvoiceSent)"
    assert types["betaInvoiceSent"]["triggerName"] == "FreshBooks Invoice Is Sent (betaInvoiceSent)"
    assert {a["apiName"] for a in types["betaInvoiceSent"]["attributes"]} == {
        "fbAccountId",
        "amount",
        "currency",
        "dueDate",
    }
    assert main(["setup-marketo", "--config", str(tmp_path / "absent.yaml")]) == 1
    assert f"no accounts config at {tmp_path / 'absent.yaml'}" in capsys.readouterr().err


def test_setup_marketo_bad_credentials_exit_1_naming_the_fix(
    make_marketo: MakeMarketo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = make_marketo()
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", emu.conn_json().replace(SECRET, "not-the-secret"))
    assert main(["setup-marketo"]) == 1
    err = capsys.readouterr().err
    assert "Marketo rejected the client id/secret of connection 'marketo_default'" in err
    assert "not-the-secret" not in err


def test_test_connection_ok_bad_secret_and_unreachable(
    make_marketo: MakeMarketo, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_marketo()
    ok, message = MarketoHook().test_connection()
    assert ok, message
    assert "lead fields" in message

    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", emu.conn_json().replace(SECRET, "wrong-secret-xyz"))
    ok, message = MarketoHook().test_connection()
    assert not ok
    assert message == (
        "Marketo rejected the client id/secret of connection 'marketo_default' (HTTP 401 from "
        "identity); check login/password"
    )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", emu.conn_json().replace(emu.url, f"http://127.0.0.1:{port}"))
    ok, message = MarketoHook().test_connection()
    assert not ok
    assert message.startswith(f"cannot reach http://127.0.0.1:{port}")
    assert "wrong-secret-xyz" not in message
    assert SECRET not in message


def test_no_token_or_secret_in_logs_output_or_errors(
    marketo: MarketoEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    marketo.inject_fault("601")
    marketo.inject_fault("503")
    marketo.inject_fault("606")
    hook = MarketoHook()
    hook.upsert_leads([{"email": "x@example.com"}])
    hook.describe_leads()
    marketo.inject_fault("601", count=2)
    with pytest.raises(AuthError) as err:
        hook.describe_leads()
    tokens = {entry.token for entry in TOKENS._tokens.values()} | set(marketo.model.tokens._expiry)
    assert tokens  # the emulator issued tokens and the hook used them
    captured = capsys.readouterr()
    seen = caplog.text + captured.out + captured.err + str(err.value) + repr(err.value)
    assert "retry" in seen  # the retries were logged
    for secret in (*tokens, SECRET):
        assert secret not in seen
    assert hook.http.redact(f"Bearer {next(iter(tokens))}") == "Bearer ***"


def test_setup_marketo_dry_run_changes_nothing(marketo: MarketoEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup-marketo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    assert "created activity type fbPaymentReceived" in out
    assert "created lead field fbLastPaymentDate" in out
    assert changes(marketo) == []
    assert marketo.activity_types() == []

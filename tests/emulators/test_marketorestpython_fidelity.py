"""Fidelity: the common third-party client ``marketorestpython`` works against the emulator unchanged.

The client builds ``https://<munchkin>.mktorest.com`` from the munchkin id; its ``host`` attribute is the only
thing redirected. Version 0.5.25 moves the token from its argument dicts into ``Authorization: Bearer``
(``helper/http_lib.py`` pops ``access_token``), so the emulator's refusal of the query parameter does
not bite it -- the call log proves no token ever travelled in a URL or form.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("marketorestpython")

from marketorestpython.client import MarketoClient

from airflow_provider_fbmkto.testing.marketo import MarketoEmulator


@pytest.fixture
def mrp_emu() -> Iterator[MarketoEmulator]:
    with MarketoEmulator(window_seconds=20.0) as emu:
        yield emu


def client(emu: MarketoEmulator, secret: str = "mkto-client-secret") -> MarketoClient:
    mc = MarketoClient(emu.munchkin_id, emu.client_id, secret, api_limit=None, max_retry_time=5)
    assert mc.host == f"https://{emu.munchkin_id}.mktorest.com"
    mc.host = emu.url
    return mc


def test_token_leads_and_custom_activities_round_trip(mrp_emu: MarketoEmulator) -> None:
    mc = client(mrp_emu)
    mc.authenticate()
    assert mc.token
    assert mc.expires_in == 3600
    assert mc.token_type == "bearer"

    written = mc.create_update_leads(
        [{"email": "ann@acme.com", "firstName": "Ann"}, {"email": "bob@acme.com", "nickname": "B"}],
        action="createOrUpdate",
        lookupField="email",
    )
    assert written[0]["status"] == "created"
    assert written[1]["status"] == "skipped"
    assert written[1]["reasons"][0]["code"] == "1006"

    found = mc.get_multiple_leads_by_filter_type("email", ["ANN@acme.com"], fields=["email", "firstName"])
    assert [(x["email"], x["firstName"]) for x in found] == [("ann@acme.com", "Ann")]

    type_id = mrp_emu.create_activity_type_direct(
        "fbInvoiceSent", "Invoice Sent", attributes=[("amount", "Amount", "currency")]
    )
    activity = {
        "leadId": written[0]["id"],
        "activityDate": "2025-03-01T10:00:00Z",
        "activityTypeId": type_id,
        "primaryAttributeValue": "INV-7",
        "attributes": [{"apiName": "amount", "value": "99.00"}],
    }
    added = mc.add_custom_activities([activity, activity])
    assert [a["status"] for a in added] == ["added", "added"]

    read = mc.get_lead_activities(activityTypeIds=[str(type_id)], sinceDatetime="2025-03-01T00:00:00Z")
    assert [a["primaryAttributeValue"] for a in read] == ["INV-7", "INV-7"]

    rest = mrp_emu.rest_calls()
    assert rest
    assert all(c.bearer and "access_token" not in c.query for c in rest)
    assert any(c.method == "POST" and c.effective_method == "GET" for c in rest)  # leads by filter use _method=GET
    assert all(not c.codes for c in rest)


def test_the_clients_606_retry_loses_its_token_and_execute_recovers(mrp_emu: MarketoEmulator) -> None:
    """A client bug the emulator exposes: http_lib pops ``access_token`` from the args dict on the first try,
    so its backoff retry after 606 goes out with no token at all and gets 601. ``execute()`` then rebuilds
    the call with the token and succeeds -- three calls for one write."""
    mc = client(mrp_emu)
    mrp_emu.inject_fault("606", path_prefix="/rest/v1/leads.json")
    result = mc.execute(
        method="create_update_leads", leads=[{"email": "ann@acme.com"}], action="createOrUpdate", lookupField="email"
    )
    assert result[0]["status"] == "created"
    lead_calls = [c for c in mrp_emu.rest_calls() if c.path == "/rest/v1/leads.json"]
    assert [c.codes for c in lead_calls] == [["606"], ["601"], []]
    assert [c.bearer for c in lead_calls] == [True, False, True]
    assert len(mrp_emu.leads()) == 1


def test_bad_credentials_surface_as_the_clients_error(mrp_emu: MarketoEmulator) -> None:
    with pytest.raises(Exception, match="Bad client credentials"):
        client(mrp_emu, secret="wrong").authenticate()


def test_types_provisioned_by_the_client_leave_setup_marketo_nothing_to_do(
    mrp_emu: MarketoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The official client's way (create, then attributes, then approve) and ours give the same instance."""
    from airflow_provider_fbmkto.cli import main
    from airflow_provider_fbmkto.hooks.marketo_schema import ACTIVITY_TYPES

    mc = client(mrp_emu)
    for spec in ACTIVITY_TYPES:
        mc.create_custom_activity_type(
            spec.api_name, spec.name, spec.trigger_name, spec.filter_name, spec.primary.name, spec.primary.display_name
        )
        attrs = [{"apiName": a.name, "name": a.display_name, "dataType": a.data_type} for a in spec.attributes]
        mc.create_custom_activity_type_attribute(spec.api_name, attrs)
        mc.approve_custom_activity_type(spec.api_name)
    described = {t["apiName"]: t for t in mc.get_custom_activity_types()}
    assert {name: t["status"] for name, t in described.items()} == dict.fromkeys(
        ("fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"), "approved"
    )
    assert described["fbPaymentReceived"]["primaryAttribute"]["dataType"] == "string"  # the client sends none

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", mrp_emu.conn_json())
    before = len(mrp_emu.rest_calls())
    assert main(["setup-marketo", "--conn-id", "marketo_default"]) == 0
    ours = mrp_emu.rest_calls()[before:]
    assert [c.path for c in ours if "/activities/external/type/" in c.path or c.path.endswith("/type.json")] == []
    writes = [c.path for c in ours if c.method == "POST"]  # the companies probe (updateOnly of no company), lead fields
    assert writes == ["/rest/v1/companies.json", "/rest/v1/leads/schema/fields.json"]

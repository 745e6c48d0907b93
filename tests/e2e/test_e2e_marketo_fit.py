"""Real DAG runs into customised Marketo instances: mapped fields, update-only, blanks, CRM-synced companies."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.state import StateDB
from tests.e2e.conftest import BASE_CONFIG, OVERDUE, World, day, make_world

pytestmark = pytest.mark.e2e

FIT = """\
    marketo:
      leads: {{create: false}}
      lead_fields: {{payment_status: acctBillingStatus, outstanding_balance: acctBalance, last_payment_date: null}}
"""  # make_world formats the config: braces doubled


def _ready(w: World) -> None:
    assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
    assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0


def _failures(w: World) -> dict[str, str]:
    return {r.key: str(r.last_error) for r in StateDB.from_airflow().ledger.failures("acme")}


def test_update_only_mapped_fields_and_blank_names(airflow_home: Path, tmp_path: Path) -> None:
    for w in make_world(airflow_home, tmp_path, BASE_CONFIG + FIT):
        # The customer's own fields, already there; and one person already in Marketo, with a first name.
        w.mkto.add_lead_field_direct("acctBillingStatus", "string")
        w.mkto.add_lead_field_direct("acctBalance", "currency")
        MarketoHook().upsert_leads([{"email": "ann@initech.io", "firstName": "Ann", "lastName": "Lee"}])
        _ready(w)
        assert "fbPaymentStatus" not in {f["name"] for f in MarketoHook().describe_leads()}  # mapped away
        ann = w.fb.add_client(fname="", lname="Lee", email="ann@initech.io", organization="Initech")
        bob = w.fb.add_client(fname="Bob", lname="Ray", email="bob@initech.io", organization="Initech")
        for client in (ann, bob):
            w.fb.add_invoice(customerid=client["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="40")

        w.ok(day(4))
        (lead,) = w.mkto.leads()  # update only: nobody was created
        assert lead["email"] == "ann@initech.io"
        assert lead["firstName"] == "Ann"  # FreshBooks' blank first name did not blank Marketo's
        assert (lead["acctBillingStatus"], float(lead["acctBalance"])) == ("current", 40.0)
        assert "fbLastPaymentDate" not in lead
        assert [t[1] for t in w.timeline("ann@initech.io")] == ["fbInvoiceSent"]
        waiting = {k: v for k, v in _failures(w).items() if "bob@initech.io" in k or "bob@initech.io" in v}
        assert waiting, _failures(w)
        assert all(v.startswith("no lead in Marketo for bob@initech.io") for v in waiting.values())

        # The person appears in Marketo (a form fill, a CRM sync): the next run delivers what waited, once.
        MarketoHook().upsert_leads([{"email": "bob@initech.io"}])
        w.ok(day(3))
        bob_lead = w.lead("bob@initech.io")
        assert (bob_lead["firstName"], bob_lead["acctBillingStatus"]) == ("Bob", "current")
        assert [t[1] for t in w.timeline("bob@initech.io")] == ["fbInvoiceSent"]
        assert not [k for k in _failures(w) if "bob@initech.io" in k]
        w.ok(day(3))  # a rerun writes nothing twice
        assert w.duplicates() == 0
        assert len(w.mkto.leads()) == 2


def test_crm_synced_instance_gets_the_company_facts_on_lead_fields(airflow_home: Path, tmp_path: Path) -> None:
    for w in make_world(airflow_home, tmp_path, marketo={"crm_synced": True, "company_fields": {}}):
        _ready(w)
        lead_fields = {f["name"] for f in MarketoHook().describe_leads()}
        assert {"fbCompanyPaymentStatus", "fbCompanyInvoiceCount", "fbCompanyOutstandingBalance"} <= lead_fields
        ann = w.fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io", organization="BigCo")
        bob = w.fb.add_client(fname="Bob", lname="Ray", email="bob@bigco.io", organization="BigCo")
        w.fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="100.00")
        w.fb.add_invoice(customerid=bob["id"], create_date=day(40).isoformat(), due_offset_days=10, amount="60.00")

        w.ok(day(4))
        assert w.mkto.companies() == []
        for email in ("ann@bigco.io", "bob@bigco.io"):
            lead = w.lead(email)
            assert "externalCompanyId" not in lead  # never pointed at a company the provider cannot write
            assert lead["fbCompanyPaymentStatus"] == "overdue"  # the worst of the company's clients
            assert int(lead["fbCompanyInvoiceCount"]) == 2
            assert float(lead["fbCompanyOutstandingBalance"]) == 160.0
            assert lead["fbCompanyPaymentTerms"] == "Net 10"  # a tie of terms: the shorter one
        assert (w.lead("ann@bigco.io")["fbPaymentStatus"], w.lead("bob@bigco.io")["fbPaymentStatus"]) == (
            "current",
            "overdue",
        )
        company_writes = [c for c in w.mkto.rest_calls() if c.path == "/rest/v1/companies.json" and c.method == "POST"]
        assert len(company_writes) == 2  # setup-marketo's and map's one-record probes; no company batch
        assert all(len(c.body["input"]) == 1 for c in company_writes)

        # Another integration spends most of the instance's day: the next load stops before the instance as a
        # whole passes this provider's budget, and says why.
        budget = w.mkto.usage_today()["total"] + 500
        conn = w.mkto.conn_json(daily_budget=budget)
        w.env["AIRFLOW_CONN_MARKETO_DEFAULT"] = conn
        w.mkto.spend_other_usage(497, "crm-sync@bigco.io")
        w.fb.add_invoice(customerid=ann["id"], create_date=day(4).isoformat(), due_offset_days=30, amount="5.00")
        proc = w.run(day(3))
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "calls other integrations made on the instance today (Marketo's stats/usage.json)" in out
        assert w.mkto.usage_today()["total"] <= budget


PARTITIONED = """\
    marketo:
      leads: {{partition: EMEA}}
      lead_fields: {{payment_status: null, outstanding_balance: null, last_payment_date: null}}
"""  # activities and segments only: the lead's own fields do not change between runs


def test_partitioned_instance_and_a_person_merged_in_marketo(airflow_home: Path, tmp_path: Path) -> None:
    marketo = {"partitions": ("EMEA",), "require_partition_name": True}
    for w in make_world(airflow_home, tmp_path, BASE_CONFIG + PARTITIONED, marketo=marketo):
        hook = MarketoHook()
        people = [{"email": "bob@initech.io"}, {"email": "a.lee@initech.io"}]  # already in Marketo
        bob_id, twin_id = [r.id for r in hook.upsert_leads(people, partition="Default")]
        _ready(w)
        ann = w.fb.add_client(fname="Ann", lname="Lee", email="ann@initech.io", organization="Initech")
        bob = w.fb.add_client(fname="Bob", lname="Ray", email="bob@initech.io", organization="Initech")
        w.fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="40.00")
        late = w.fb.add_invoice(customerid=ann["id"], create_date=day(40).isoformat(), due_offset_days=10, amount="9")
        w.fb.add_invoice(customerid=bob["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="20.00")

        w.ok(day(4))
        partitions = {
            x["email"]: x["leadPartitionId"]
            for x in hook.get_leads_by_email(["ann@initech.io", "bob@initech.io"], ["email", "leadPartitionId"])
        }
        assert partitions == {"ann@initech.io": 2, "bob@initech.io": 1}  # new in EMEA; the existing one stays
        ann_id = w.lead("ann@initech.io")["id"]
        assert w.mkto.list_members(OVERDUE) == [ann_id]

        # A Marketo user merges Ann's lead into an older duplicate, keeping Ann's e-mail on the survivor.
        w.mkto.merge_leads(twin_id, ann_id)
        hook.upsert_leads([{"id": twin_id, "email": "ann@initech.io"}], lookup_field="id", create=False)
        w.fb.add_payment(invoiceid=late["id"], amount="9", date=day(4).isoformat())

        w.ok(day(3))
        assert [t[1] for t in w.timeline("ann@initech.io")] == ["fbInvoiceSent", "fbPaymentReceived"]
        assert w.lead("ann@initech.io")["id"] == twin_id
        assert w.mkto.list_members(OVERDUE) == []  # the survivor left the overdue list too
        row = StateDB.from_airflow().ledger.get("lead:acme:ann@initech.io")
        assert row is not None
        assert row.marketo_id == str(twin_id)  # remembered from now on
        assert bob_id in {x["id"] for x in w.mkto.leads()}
        w.ok(day(3))
        assert w.duplicates() == 0

"""The memory fixes the benchmark led to change nothing in what is planned or found.

The planner now plans activities a few days at a time and companies/leads a chunk of whole groups at a time;
reconcile compares large accounts in buckets of e-mail domains. Here both run with tiny chunks and buckets
and are checked against the sync functions applied to all records at once (what the pipeline did before).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.pipeline import planner, planner_facts, planner_groups
from airflow_provider_fbmkto.pipeline import reconcile as reconcile_step
from airflow_provider_fbmkto.pipeline.context import RunContext
from airflow_provider_fbmkto.pipeline.extract import FILES, extract
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.sync.activities import invoice_sent_activities, overdue_activities, payment_activities
from airflow_provider_fbmkto.sync.codec import loads_line
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.mapping import list_change, plan_companies, plan_leads
from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS, match_clients
from airflow_provider_fbmkto.sync.plan import MappingContext
from airflow_provider_fbmkto.sync.reconcile import compare
from airflow_provider_fbmkto.sync.records import Client, Invoice, Payment
from airflow_provider_fbmkto.sync.window import Window, start_of_day
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.freshbooks.seed import seed

ACCT, FB_CONN = "acme", "freshbooks_acme"
CONFIG = f"""
accounts:
  - name: {ACCT}
    freshbooks_conn_id: {FB_CONN}
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2020-01-01"
    matching:
      rules:
        - {{domain: SEEDED_DOMAIN, company: Named By Rule}}
        - {{client_id: 3, company: Forty Two Ltd}}
    segments: {{paid_list_id: 1001, overdue_list_id: 1002}}
"""


@dataclass
class Setup:
    fb: FreshBooksEmulator
    db: StateDB
    account: AccountConfig
    home: Path

    def ctx(self, run_id: str, now: datetime) -> RunContext:
        start = start_of_day(date(2020, 1, 1), self.account.tz)
        return RunContext(self.account, run_id, Window(start, now), now)

    def extract(self, ctx: RunContext) -> tuple[Path, dict[str, Any]]:
        staging = self.home / "staging" / ctx.run_id
        return staging, extract(FreshBooksHook(FB_CONN, state=self.db), self.db, ctx, staging)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    reset_process_state()
    with FreshBooksEmulator() as fb:
        seed(fb.model, "streaming", clients=150, invoices_per_client=3, months=4)
        # the first company domain of the seed (the seed's dates follow today's; a free-mail domain is refused)
        domains = (c.email.split("@")[1].lower() for c in fb.model.clients.values())
        domain = next(d for d in domains if d not in FREE_MAIL_DOMAINS)
        cfg = tmp_path / "accounts.yaml"
        cfg.write_text(CONFIG.replace("SEEDED_DOMAIN", domain))
        monkeypatch.setenv(f"AIRFLOW_CONN_{FB_CONN.upper()}", fb.conn_json())
        assert fbmkto(["authorize", "--conn-id", FB_CONN, "--code", fb.issue_code()]) == 0
        yield Setup(fb, StateDB.from_airflow(), load_config(cfg).account(ACCT), tmp_path)
    reset_process_state()


def _staged(staging: Path) -> tuple[list[Client], list[Invoice], list[Payment]]:
    records = [loads_line(line) for name in FILES.values() for line in (staging / name).read_text().splitlines()]
    return (
        [r for r in records if isinstance(r, Client)],
        [r for r in records if isinstance(r, Invoice)],
        [r for r in records if isinstance(r, Payment)],
    )


def _expected_first_run(staging: Path, ctx: RunContext, fb_account_id: str) -> dict[str, str]:
    """Key → payload hash of everything a first run plans, from the sync functions over all records at once."""
    clients, invoices, payments = _staged(staging)
    acct = ctx.account
    mctx = MappingContext(acct.name, fb_account_id, acct.tz, acct.activity_types)
    matches = match_clients(clients, acct.matching.rules, acct.matching.free_mail)
    currencies = Counter(c.currency_code for c in clients if not c.is_deleted)
    currency = min(currencies.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    leads = plan_leads(clients, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency)
    companies = plan_companies(clients, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency)
    by_id = {c.id: c for c in clients}
    plans = [
        invoice_sent_activities(invoices, by_id, ctx.window, mctx),
        payment_activities(payments, by_id, {i.id: i for i in invoices}, ctx.window, mctx),
        overdue_activities(invoices, by_id, ctx.window, mctx, payments=payments),
    ]
    expected = {a.key: a.payload_hash() for p in plans for a in p.items}
    expected |= {c.key: c.payload_hash() for c in companies.items}
    expected |= {lead.key: lead.payload_hash() for lead in leads.items}
    for lead in leads.items:
        change = list_change(lead, acct.segments, mctx)
        assert change is not None
        expected[change.key] = change.payload_hash()
    return expected


def _ledger(db: StateDB) -> dict[str, tuple[str, str]]:
    return {r.key: (r.payload_hash, str(r.status)) for r in db.ledger.iter_rows(ACCT)}


def _tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner_groups, "CLIENTS_PER_CHUNK", 3)
    monkeypatch.setattr(planner_facts, "DAYS_PER_CHUNK", 1)
    monkeypatch.setattr(planner_facts, "RECORDS_PER_BATCH", 2)


def test_planning_in_small_chunks_plans_exactly_what_planning_everything_at_once_does(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(timezone.utc)
    ctx = setup.ctx("first", now)
    staging, extracted = setup.extract(ctx)
    expected = _expected_first_run(staging, ctx, extracted["fb_account_id"])
    assert {k.split(":")[0] for k in expected} >= {"company", "lead", "list", "invoice_sent", "payment_received"}
    assert any(k.startswith("invoice_overdue:") for k in expected)

    planner.plan_run(setup.db, ctx, staging, extracted)  # default chunks: the whole seed in one chunk
    chunked_db = StateDB(f"sqlite:///{tmp_path}/chunked.db")
    with monkeypatch.context() as m:
        _tiny_chunks(m)
        planner.plan_run(chunked_db, ctx, staging, extracted)
    assert {k: h for k, (h, _) in _ledger(setup.db).items()} == expected
    assert _ledger(chunked_db) == _ledger(setup.db)

    # A day later: a few clients, invoices and payments change; both plan the same (small) set of writes.
    model = setup.fb.model
    live = sorted(i for i, c in model.clients.items() if c.vis_state == 0)[:5]
    for cid in live:
        setup.fb.update("client", cid, lname="Renamed")
    open_invoice = next(i for i, inv in sorted(model.invoices.items()) if inv.outstanding > 0 and inv.vis_state == 0)
    setup.fb.add("payment", invoiceid=open_invoice, amount=str(model.invoices[open_invoice].outstanding), type="ACH")
    setup.fb.add("invoice", customerid=live[-1], amount="123.00")
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    ctx2 = setup.ctx("second", later)
    staging2, extracted2 = setup.extract(ctx2)
    whole = planner.plan_run(setup.db, ctx2, staging2, extracted2)
    with monkeypatch.context() as m:
        _tiny_chunks(m)
        chunked = planner.plan_run(chunked_db, ctx2, staging2, extracted2)
    assert chunked["ledger"] == whole["ledger"]
    assert chunked["affected_clients"] == whole["affected_clients"]
    assert 0 < whole["ledger"].get("changed", 0) + whole["ledger"].get("new", 0) < len(expected) / 4
    assert _ledger(chunked_db) == _ledger(setup.db)


class _NoMarketo:
    """Reconcile is given the leads; it must not call Marketo."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"reconcile called Marketo ({name})")


def test_reconciling_in_buckets_finds_the_same_mismatches_as_comparing_everything(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(timezone.utc)
    ctx = setup.ctx("first", now)
    staging, extracted = setup.extract(ctx)
    planner.plan_run(setup.db, ctx, staging, extracted)
    clients, _, _ = _staged(staging)
    matches = match_clients(clients, setup.account.matching.rules, setup.account.matching.free_mail)
    leads: list[dict[str, Any]] = []
    for n, c in enumerate(sorted(clients, key=lambda c: c.id)):
        if not c.email or n % 7 == 0:  # every 7th client has no lead: only_in_freshbooks
            continue
        company = matches[c.id].name if c.id in matches else ""
        leads.append(
            {
                "id": 1000 + n,
                "email": c.email.upper() if n % 5 == 0 else c.email,
                "firstName": c.fname if n % 4 else "Someone",
                "lastName": c.lname,
                "company": company if n % 6 else "Wrong Company",
            }
        )
    leads += [{"id": 9000 + i, "email": f"stranger{i}@nowhere{i}.example", "firstName": "X"} for i in range(5)]
    dry = RunContext(setup.account, "reconcile", ctx.window, now, dry_run=True)

    whole = reconcile_step.reconcile(_NoMarketo(), setup.db, dry, leads=iter(leads))  # type: ignore[arg-type]
    read_back = Counter[str]()
    real_read = reconcile_step._read_jsonl

    def counting(path: Path) -> Iterator[dict[str, Any]]:
        read_back[path.name] += 1
        return real_read(path)

    monkeypatch.setattr(reconcile_step, "BUCKET_CLIENTS", 20)
    monkeypatch.setattr(reconcile_step, "_read_jsonl", counting)
    bucketed = reconcile_step.reconcile(_NoMarketo(), setup.db, dry, leads=iter(leads))  # type: ignore[arg-type]

    assert len(read_back) >= 5  # it did compare in buckets
    # Reconcile compares the leads of the account's clients' e-mails (the strangers are out of its scope).
    emails = {c.email.strip().lower() for c in clients if c.email.strip()}
    ours = [lead for lead in leads if str(lead["email"]).lower() in emails]
    reference = compare(clients, ours, companies=matches)
    assert bucketed == whole
    assert bucketed["mismatches"] == dict(Counter(m.kind.value for m in reference))
    assert {"name_differs", "company_differs", "only_in_freshbooks", "deleted_in_freshbooks"} == set(
        bucketed["mismatches"]
    )
    assert [e["email"] for e in bucketed["examples"]] == [m.email for m in reference[:50]]
    assert bucketed["leads_compared"] == len(ours) == len(leads) - 5
    assert json.dumps(bucketed)  # XCom-ready

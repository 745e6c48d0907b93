"""Exactly-once delivery of activities: the loader against both emulators, crashes simulated in between.

Every scenario plans one 30-day window of the emulator's ``seed="demo"`` business (about 40 activities, a dozen
leads) through the real extract and plan steps, then drives :class:`Loader` directly (no Airflow scheduler).
The invariant checked at the end of each: every activity ledger row is ``written`` and Marketo holds exactly
one activity for each of them, and no other activity.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.exceptions import ApiError, TransportError
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_schema import PAYMENT_RECEIVED, ensure_schema
from airflow_provider_fbmkto.pipeline.context import RunContext
from airflow_provider_fbmkto.pipeline.extract import extract
from airflow_provider_fbmkto.pipeline.loader import Loader
from airflow_provider_fbmkto.pipeline.loader_in_doubt import STALE_AFTER
from airflow_provider_fbmkto.pipeline.planner import plan_run
from airflow_provider_fbmkto.state import LedgerRow, LedgerStatus, RowOutcome, StateDB
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.window import Window
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

ACCT = "demo"
FB_CONN = "freshbooks_demo"
MK_CONN = "marketo_default"
ACTIVITIES_PATH = "/rest/v1/activities/external.json"
CONFIG = f"""
accounts:
  - name: {ACCT}
    freshbooks_conn_id: {FB_CONN}
    marketo_conn_id: {MK_CONN}
    schedule: "@daily"
    start_date: "2025-01-01"
    segments: {{paid_list_id: 1001, overdue_list_id: 1002}}
"""
UTC = timezone.utc

Identity = tuple[int, int, str, datetime]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Stack:
    """Both emulators, the state DB and the account, wired the way the DAG wires them."""

    fb: FreshBooksEmulator
    mk: MarketoEmulator
    db: StateDB
    account: AccountConfig
    home: Path
    now: datetime

    def ctx(self, run_id: str, **flags: bool) -> RunContext:
        end = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        return RunContext(self.account, run_id, Window(end - timedelta(days=30), end), self.now, **flags)

    def plan(self, ctx: RunContext) -> dict[str, Any]:
        """extract + map of the run (FreshBooks → staging → mirror → ledger)."""
        staging = self.home / "staging" / ctx.run_id
        extracted = extract(FreshBooksHook(FB_CONN, state=self.db), self.db, ctx, staging)
        return plan_run(self.db, ctx, staging, extracted)

    def hook(self) -> MarketoHook:
        return MarketoHook(MK_CONN)

    def loader(self, ctx: RunContext, now: Callable[[], datetime] | None = None) -> Loader:
        return Loader(self.hook(), self.db, ctx, now=now)

    def rows(self, kind: str = "activity") -> list[LedgerRow]:
        return list(self.db.ledger.iter_rows(ACCT, kind))

    def statuses(self, kind: str = "activity") -> Counter[str]:
        return Counter(str(r.status) for r in self.rows(kind))

    def lead_ids(self) -> dict[str, int]:
        return {str(lead["email"]).lower(): int(lead["id"]) for lead in self.mk.leads()}

    def type_ids(self) -> dict[str, int]:
        return {str(t["apiName"]): int(t["id"]) for t in self.mk.activity_types()}

    def identity(self, row: LedgerRow) -> Identity:
        """What tells one activity from another in Marketo: lead, type, primary value, date."""
        p = row.payload
        return (
            self.lead_ids()[p["leadEmail"]],
            self.type_ids()[p["activityType"]],
            str(p["primaryAttributeValue"]),
            _utc(p["activityDate"]),
        )

    def marketo_activities_per_key(self) -> Counter[str]:
        """How many activities Marketo holds for each activity ledger key (unknown ones under ``?``)."""
        by_identity = {self.identity(r): r.key for r in self.rows()}
        return Counter(
            by_identity.get(
                (
                    int(a["leadId"]),
                    int(a["activityTypeId"]),
                    str(a.get("primaryAttributeValue")),
                    _utc(str(a["activityDate"])),
                ),
                "?",
            )
            for a in self.mk.activities()
        )

    def assert_exactly_once(self) -> None:
        rows = self.rows()
        assert rows, "the scenario planned no activity; it would prove nothing"
        assert self.statuses() == Counter({"written": len(rows)})
        per_key = self.marketo_activities_per_key()
        assert "?" not in per_key, "Marketo holds an activity no ledger row accounts for"
        assert per_key == Counter({r.key: 1 for r in rows})
        assert len(self.mk.activities()) == len(rows)

    def send_as_crashed_run(self, rows: list[LedgerRow]) -> None:
        """What a run does between claiming and marking: post the activities (its answer is then lost)."""
        leads, types = self.lead_ids(), self.type_ids()
        body = [
            {
                "leadId": leads[r.payload["leadEmail"]],
                "activityDate": r.payload["activityDate"],
                "activityTypeId": types[r.payload["activityType"]],
                "primaryAttributeValue": r.payload["primaryAttributeValue"],
                "attributes": [{"apiName": k, "value": v} for k, v in r.payload["attributes"].items()],
            }
            for r in rows
        ]
        results = self.hook().add_activities(body)
        assert [r.status for r in results] == ["added"] * len(rows)


def _create_schema_without_approving(hook: MarketoHook, unapproved: str) -> None:
    """What ``setup-marketo`` does, except that one activity type stays a draft."""
    report = ensure_schema(hook, leave_drafts={unapproved})
    assert report.created_lead_fields


@pytest.fixture
def make_stack(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stack]]:
    """Start both emulators, authorize FreshBooks, prepare Marketo (``unapproved`` leaves a type a draft)."""
    with ExitStack() as stack:

        def make(*, unapproved: str | None = None, conn: dict[str, Any] | None = None, **mk_options: Any) -> Stack:
            fb = stack.enter_context(FreshBooksEmulator(seed="demo"))
            mk_options.setdefault("window_seconds", 1.0)
            mk = stack.enter_context(MarketoEmulator(lists={1001: "Paid", 1002: "Overdue"}, **mk_options))
            monkeypatch.setenv(f"AIRFLOW_CONN_{FB_CONN.upper()}", fb.conn_json())
            monkeypatch.setenv(f"AIRFLOW_CONN_{MK_CONN.upper()}", mk.conn_json(**(conn or {})))
            assert fbmkto(["authorize", "--conn-id", FB_CONN, "--code", fb.issue_code()]) == 0
            if unapproved is None:
                assert fbmkto(["setup-marketo", "--conn-id", MK_CONN]) == 0
            else:
                _create_schema_without_approving(MarketoHook(MK_CONN), unapproved)
            cfg = airflow_env / "fbmkto_accounts.yaml"
            cfg.write_text(CONFIG)
            return Stack(fb, mk, StateDB.from_airflow(), load_config(cfg).account(ACCT), airflow_env, datetime.now(UTC))

        yield make


@pytest.fixture
def planned(make_stack: Callable[..., Stack]) -> Stack:
    s = make_stack()
    result = s.plan(s.ctx("crashed"))
    assert result["planned"]["activity"] >= 10
    assert s.statuses() == Counter({"pending": result["planned"]["activity"]})
    return s


# -- (a) crash after Marketo accepted, before the ledger was marked ----------------------------------


def test_accepted_but_unmarked_activities_are_read_back_not_resent(planned: Stack) -> None:
    s = planned
    crashed = s.ctx("crashed")
    claimed = s.db.ledger.claim(ACCT, "activity", limit=1000, run_id="crashed")
    assert len(claimed) == len(s.rows())

    # Meanwhile another run (a concurrent backfill) writes companies, leads and lists; it leaves the crashed run's
    # young in-flight activities alone.
    s.loader(s.ctx("other")).run()
    assert s.statuses() == Counter({"in_flight": len(claimed)})
    assert s.mk.activities() == []
    assert len(s.mk.leads()) > 0

    # The crashed run had sent the first batch and part of a second one before it died.
    sent, unsent = claimed[: len(claimed) * 2 // 3], claimed[len(claimed) * 2 // 3 :]
    s.send_as_crashed_run(sent)
    assert len(s.mk.activities()) == len(sent)

    # Airflow retries the crashed task: same run id.
    result = s.loader(crashed).run()
    assert result["sent"] == {"activity:written": len(unsent)}  # only what Marketo did not have
    s.assert_exactly_once()
    # The read-back stored Marketo's activity id of each confirmed row.
    ids = {int(a["id"]) for a in s.mk.activities()}
    assert {int(r.marketo_id or 0) for r in s.rows()} == ids


def test_answer_lost_on_a_read_timeout_is_resolved_by_the_retry(make_stack: Callable[..., Stack]) -> None:
    # The real thing: Marketo writes the batch but answers after the client gave up waiting.
    s = make_stack(conn={"request_timeout": 0.5}, timeout_fault_seconds=1.5)
    run = s.ctx("r1")
    s.plan(run)
    n = len(s.rows())
    s.mk.inject_fault("timeout", path_prefix=ACTIVITIES_PATH)

    with pytest.raises(TransportError) as err:
        s.loader(run).run()
    assert err.value.sent
    assert s.statuses() == Counter({"in_flight": n})  # in doubt: neither written nor pending

    deadline = time.monotonic() + 10
    while len(s.mk.activities()) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(s.mk.activities()) == n  # the stalled call did land

    s.loader(run).run()
    s.assert_exactly_once()
    assert len(s.mk.list_members(1001)) + len(s.mk.list_members(1002)) > 0  # the rest of the load went on


def test_a_retry_right_after_a_lost_answer_waits_for_the_late_write_instead_of_resending(
    make_stack: Callable[..., Stack],
) -> None:
    # Marketo applies the batch 0.7 s after the client gave up (read timeout 0.5 s), and Airflow retries the task at
    # once: the first read-back finds nothing. Resending then would duplicate every activity of the batch.
    s = make_stack(conn={"request_timeout": 0.5}, timeout_fault_seconds=1.2)
    run = s.ctx("r1")
    s.plan(run)
    n = len(s.rows())
    s.mk.inject_fault("timeout", path_prefix=ACTIVITIES_PATH)
    with pytest.raises(TransportError):
        s.loader(run).run()
    assert len(s.mk.activities()) < n  # the late write has not landed when the retry starts

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    retry = Loader(s.hook(), s.db, run, sleep=sleep)
    retry.run()

    assert len(waits) == 1
    assert 0 < waits[0] <= 1.0
    assert any("waited" in note and "late writes" in note for note in retry.notes)
    s.assert_exactly_once()


def test_claimed_but_unsent_activities_are_sent_at_once_without_waiting(planned: Stack) -> None:
    s = planned
    claimed = s.db.ledger.claim(ACCT, "activity", limit=1000, run_id="crashed")
    assert all(r.sent_at is None for r in claimed)  # the crash came before the send
    waits: list[float] = []
    Loader(s.hook(), s.db, s.ctx("crashed"), sleep=waits.append).run()
    assert waits == []
    s.assert_exactly_once()


# -- (b) crash before sending ------------------------------------------------------------------------


def test_claimed_but_never_sent_rows_go_back_to_pending_and_are_sent_once(planned: Stack) -> None:
    s = planned
    for kind in ("company", "lead", "activity"):
        assert s.db.ledger.claim(ACCT, kind, limit=1000, run_id="crashed")
    assert s.mk.leads() == []

    result = s.loader(s.ctx("crashed")).run()

    assert result["sent"]["activity:written"] == len(s.rows())
    s.assert_exactly_once()
    lead_rows = s.rows("lead")
    assert s.statuses("lead") == Counter({"written": len(lead_rows)})
    assert sorted(s.lead_ids()) == sorted(r.payload["email"] for r in lead_rows)


# -- (c) in-flight rows of another run: left alone while young, resolved when stale -----------------------


def test_young_rows_of_another_run_are_left_alone_and_stale_ones_resolved(planned: Stack) -> None:
    s = planned
    claimed = s.db.ledger.claim(ACCT, "activity", limit=1000, run_id="crashed")
    claimed_at = max(r.updated_at for r in claimed)

    # Just before the rows turn stale: still the other run's business.
    almost = claimed_at + STALE_AFTER - timedelta(seconds=30)
    s.loader(s.ctx("next"), now=lambda: almost).run()
    assert s.statuses() == Counter({"in_flight": len(claimed)})
    assert {r.run_id for r in s.rows()} == {"crashed"}
    assert s.mk.activities() == []

    # Part of them had reached Marketo: those are settled as written at once (whoever sent them); the others
    # stay with their run while it may still be sending them.
    s.send_as_crashed_run(claimed[::3])
    s.loader(s.ctx("next"), now=lambda: almost).run()
    assert s.statuses() == Counter({"written": len(claimed[::3]), "in_flight": len(claimed) - len(claimed[::3])})
    assert len(s.mk.activities()) == len(claimed[::3])

    # Once stale, the next run settles the rest: not in Marketo, so back to pending and sent.
    later = claimed_at + STALE_AFTER + timedelta(minutes=1)
    result = s.loader(s.ctx("later"), now=lambda: later).run()
    assert result["sent"] == {"activity:written": len(claimed) - len(claimed[::3])}
    s.assert_exactly_once()


# -- (d) rate-limit storm and server errors during the load ------------------------------------------


def test_606_storm_and_5xx_still_write_everything_once(planned: Stack) -> None:
    s = planned
    run = s.ctx("crashed")
    s.mk.inject_fault("606", count=3)
    s.mk.inject_fault("502", count=2, path_prefix="/rest/v1/leads.json")
    s.mk.inject_fault("500", count=1, path_prefix=ACTIVITIES_PATH)

    # The activities call fails with a 5xx: it may have been applied, so it is not resent blindly.
    with pytest.raises(ApiError) as err:
        s.loader(run).run()
    assert err.value.retryable
    assert s.statuses() == Counter({"in_flight": len(s.rows())})

    # Airflow's retry of the task, at once: the batch went out moments ago, so the retry would wait up to
    # 2 x request_timeout (60 s) for a late write before reading it back again (the wait is recorded, not slept).
    waits: list[float] = []
    Loader(s.hook(), s.db, run, sleep=waits.append).run()
    assert len(waits) == 1
    assert 100 < waits[0] <= 120
    s.assert_exactly_once()
    codes = Counter(code for call in s.mk.rest_calls() for code in call.codes)
    assert codes["606"] == 3  # the storm really happened (and was waited out)
    statuses = Counter(call.status for call in s.mk.rest_calls())
    assert statuses[502] == 2
    assert statuses[500] == 1
    leads = s.mk.leads()
    assert len(leads) == len({str(lead["email"]).lower() for lead in leads}) == len(s.rows("lead"))


# -- (e) an unapproved activity type: skipped with Marketo's reason, replayed after the fix ---------------


def test_unapproved_type_is_skipped_with_reason_then_retried_by_the_next_run_once_approved(
    make_stack: Callable[..., Stack],
) -> None:
    s = make_stack(unapproved=PAYMENT_RECEIVED.api_name)
    s.plan(s.ctx("r1"))
    payments = {r.key for r in s.rows() if r.payload["activityType"] == PAYMENT_RECEIVED.api_name}
    others = {r.key for r in s.rows()} - payments
    assert payments
    assert others

    s.loader(s.ctx("r1")).run()

    failures = {r.key: r for r in s.db.ledger.failures(ACCT, kind="activity", limit=1000)}
    assert set(failures) == payments
    for row in failures.values():
        assert row.status is LedgerStatus.SKIPPED
        assert row.last_error is not None
        assert "1013" in row.last_error
        assert PAYMENT_RECEIVED.api_name in row.last_error  # Marketo's own reason, naming the type
    assert {r.key for r in s.rows() if r.status is LedgerStatus.WRITTEN} == others
    assert len(s.mk.activities()) == len(others)

    s.hook().approve_activity_type(PAYMENT_RECEIVED.api_name)

    # Fixed: the cause (an unapproved type) may go away by itself, so the next run tries them again without a
    # replay -- once each, so nothing is sent twice.
    assert s.loader(s.ctx("r2")).run()["sent"] == {"activity:written": len(payments)}
    s.assert_exactly_once()
    assert s.db.ledger.failures(ACCT) == []

    # A replay afterwards finds nothing to resend.
    again = s.loader(replace(s.ctx("r3"), replay_failed=True)).run()
    assert again["sent"] == {}
    assert len(s.mk.activities()) == len(s.rows())


# -- (f) dry run ------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(make_stack: Callable[..., Stack]) -> None:
    s = make_stack()
    run = s.ctx("dry", dry_run=True)
    mapped = s.plan(run)
    planned = mapped["planned"]
    calls_before = len(s.mk.rest_calls())

    result = s.loader(run).run()

    assert result["dry_run"] is True
    assert result["would_send"] == {}  # the dry run planned into no ledger row, so nothing is pending
    for kind in ("company", "lead", "activity", "list"):
        assert mapped["preview"][kind]["new"] == planned[kind]  # ... but previews every write, per kind
    assert s.mk.leads() == []
    assert s.mk.companies() == []
    assert s.mk.activities() == []
    assert len(s.mk.rest_calls()) == calls_before  # not even a read
    assert s.statuses() == Counter()


# -- deleted before send ----------------------------------------------------------------------------


def test_activities_whose_record_was_deleted_before_load_are_withdrawn_and_come_back_if_it_does(
    planned: Stack,
) -> None:
    """Planned but not yet loaded: an invoice is deleted, another goes back to draft, a payment is deleted. The
    next run withdraws exactly their activities (with the reason) and loads the rest; the payment restored,
    its activity is planned and sent again."""
    s = planned
    by_kind: dict[str, list[LedgerRow]] = {}
    for row in s.rows():
        by_kind.setdefault(row.key.split(":")[0], []).append(row)
    sent_rows, paid_rows = by_kind["invoice_sent"], by_kind["payment_received"]

    def invoice_of(row: LedgerRow) -> int:
        return int(row.key.split(":")[2])

    unpaid = [r for r in sent_rows if float(s.fb.get("invoice", invoice_of(r))["paid"]["amount"]) == 0]
    deleted_inv, draft_inv = invoice_of(unpaid[0]), invoice_of(unpaid[1])
    deleted_pay = int(paid_rows[0].key.rsplit(":", 1)[1])
    s.fb.delete("invoice", deleted_inv)
    assert s.fb.update("invoice", draft_inv, status=1)["status"] == 1
    s.fb.delete("payment", deleted_pay)
    # Every activity of the two invoices (Invoice Sent, and Invoice Overdue where planned), and the payment's.
    gone = {
        r.key
        for r in s.rows()
        if r.key.split(":")[0] != "payment_received" and invoice_of(r) in (deleted_inv, draft_inv)
    }
    gone.add(paid_rows[0].key)
    assert len(gone) >= 3

    s.now = datetime.now(UTC)  # the next run pulls what changed until now
    result = s.plan(s.ctx("next"))
    s.loader(s.ctx("next")).run()

    assert result["withdrawn"] == len(gone)
    statuses = {r.key: str(r.status) for r in s.rows()}
    assert {k for k, v in statuses.items() if v == "withdrawn"} == gone
    assert {v for k, v in statuses.items() if k not in gone} == {"written"}
    reason = s.db.ledger.get(paid_rows[0].key)
    assert reason is not None
    assert "deleted" in (reason.last_error or "")
    primaries = {str(a.get("primaryAttributeValue")) for a in s.mk.activities()}
    assert str(deleted_pay) not in primaries
    assert len(s.mk.activities()) == len(statuses) - len(gone)

    s.fb.update("payment", deleted_pay, vis_state=0)  # restored in FreshBooks: the fact is back
    s.now = datetime.now(UTC)
    again = s.plan(s.ctx("restored"))
    s.loader(s.ctx("restored")).run()
    assert again["ledger"].get("changed", 0) >= 1
    assert str(s.db.ledger.get(paid_rows[0].key).status) == "written"  # type: ignore[union-attr]
    assert str(deleted_pay) in {str(a.get("primaryAttributeValue")) for a in s.mk.activities()}
    assert len(s.mk.activities()) == len(statuses) - len(gone) + 1


# -- (g) rows a load fails wait for the next run; the load does not take them back and spin ------------------


def test_activities_failed_by_this_load_are_not_claimed_again_by_it(
    planned: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = planned
    # Nobody's lead row went through (Marketo skipped them all): every activity fails for want of its person.
    s.db.ledger.mark(RowOutcome(r.key, LedgerStatus.SKIPPED, None, "skipped by Marketo") for r in s.rows("lead"))
    monkeypatch.setattr("airflow_provider_fbmkto.pipeline.loader.BATCH", 5)  # several batches, one at a time
    activities = len(s.rows())
    calls_before = len(s.mk.rest_calls())

    result = Loader(s.hook(), s.db, s.ctx("r1"), concurrency=1).run()

    assert result["sent"]["activity:failed"] == activities
    assert {r.attempts for r in s.rows()} == {1}  # each tried once: failed rows were not taken back at once
    lookups = [c for c in s.mk.rest_calls()[calls_before:] if c.path == "/rest/v1/leads.json"]
    # one look-up of the missing people per activity batch, and one for the list rows
    assert len(lookups) <= -(-activities // 5) + 1
    assert not [c for c in s.mk.rest_calls()[calls_before:] if c.path == ACTIVITIES_PATH]

    # The next run retries them (and fails them again, once each, while the people are missing).
    Loader(s.hook(), s.db, s.ctx("r2"), concurrency=1).run()
    assert {r.attempts for r in s.rows()} == {2}


# -- (h) a load remembers the lead ids it wrote ---------------------------------------------------------------


def test_activities_go_to_the_leads_the_same_load_wrote_without_reading_their_ids_back(planned: Stack) -> None:
    s = planned
    id_reads: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if "fbmkto_ledger.marketo_id IS NOT NULL" in sql:
            id_reads.append(sql)

    event.listen(s.db.engine, "before_cursor_execute", record)
    s.loader(s.ctx("r1")).run()
    assert s.statuses("lead") == Counter({"written": len(s.rows("lead"))})
    s.assert_exactly_once()  # every activity on the lead Marketo gave for its e-mail
    assert id_reads == []  # the lead phase's answers gave every id; the ledger was not asked for one

    # A later load knows no id yet: it reads the remembered ones from the ledger (and Marketo is not asked).
    s.db.ledger.reset_to_pending(r.key for r in s.rows("list"))
    calls_before = len(s.mk.rest_calls())
    s.loader(s.ctx("r2")).run()
    assert id_reads
    assert not [c for c in s.mk.rest_calls()[calls_before:] if c.path == "/rest/v1/leads.json"]

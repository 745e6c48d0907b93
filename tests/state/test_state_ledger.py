from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_fbmkto.state import LedgerStatus, RowOutcome, StateDB
from airflow_provider_fbmkto.state._util import utcnow

ACCT = "acme"


def entry(key: str, version: str = "v1", kind: str = "activity") -> tuple[str, str, dict[str, Any], str]:
    return (key, kind, {"key": key, "version": version}, f"hash-{version}")


def company(key: str, version: str = "v1") -> tuple[str, str, dict[str, Any], str]:
    return entry(key, version, kind="company")


def test_plan_new_rows_are_pending_with_payload(db: StateDB) -> None:
    result = db.ledger.plan(ACCT, "run1", [entry("a:1"), entry("a:2", kind="lead")])
    assert (result.new, result.changed, result.unchanged) == (2, 0, 0)
    assert result["new"] == 2
    row = db.ledger.get("a:1")
    assert row is not None
    assert row.status is LedgerStatus.PENDING
    assert row.payload == {"key": "a:1", "version": "v1"}
    assert (row.account, row.kind, row.payload_hash, row.attempts, row.run_id) == (
        ACCT,
        "activity",
        "hash-v1",
        0,
        "run1",
    )
    assert row.created_at.tzinfo is not None
    assert db.ledger.get("missing") is None


def test_plan_rules_for_existing_keys(db: StateDB) -> None:
    """State rows (company here) follow the plan rules; written ones are re-sent when their hash changes."""
    keys = ["k1", "k2", "k3", "k4", "k5", "k7"]
    db.ledger.plan(ACCT, "run1", [company(k) for k in keys])
    claimed = db.ledger.claim(ACCT, "company", limit=10, run_id="run1")
    assert [r.key for r in claimed] == keys
    db.ledger.mark(
        [
            RowOutcome("k1", LedgerStatus.WRITTEN, marketo_id=101),
            RowOutcome("k2", "skipped", error="1004 Lead not found"),
            RowOutcome("k3", "failed", error="604 timeout"),
            # k4 stays in_flight (as after a crash)
            RowOutcome("k5", "pending"),
            RowOutcome("k7", "written", marketo_id=107),
        ]
    )
    result = db.ledger.plan(
        ACCT,
        "run2",
        [
            company("k1"),  # written, same hash -> unchanged
            company("k2", "v2"),  # skipped, new hash -> pending with new payload
            company("k3"),  # failed, same hash -> stays failed
            company("k4", "v2"),  # in_flight, new hash -> held (must be resolved first)
            company("k5", "v2"),  # pending, new hash -> new payload, still pending
            company("k6"),  # new
            company("k7", "v2"),  # written, new hash -> pending again (an update to send)
        ],
    )
    assert result.as_dict() == {"new": 1, "changed": 3, "unchanged": 3, "held": 1, "kept": 0}

    def status(key: str) -> LedgerStatus:
        row = db.ledger.get(key)
        assert row is not None
        return row.status

    assert [status(k) for k in ["k1", "k2", "k3", "k4", "k5", "k6", "k7"]] == [
        LedgerStatus.WRITTEN,
        LedgerStatus.PENDING,
        LedgerStatus.FAILED,
        LedgerStatus.IN_FLIGHT,
        LedgerStatus.PENDING,
        LedgerStatus.PENDING,
        LedgerStatus.PENDING,
    ]
    k4, k7, k2 = db.ledger.get("k4"), db.ledger.get("k7"), db.ledger.get("k2")
    assert k4 is not None
    assert k7 is not None
    assert k2 is not None
    assert k4.payload["version"] == "v1"  # the in-flight payload is kept for resolution
    assert k7.payload == {"key": "k7", "version": "v2"}
    assert (k7.payload_hash, k7.marketo_id, k7.run_id) == ("hash-v2", "107", "run2")
    assert k7.written_at is not None  # when it was last written
    assert k2.last_error is None
    assert k2.attempts == 0
    # Same input again: nothing changes any more.
    again = db.ledger.plan(ACCT, "run3", [company("k2", "v2"), company("k6")])
    assert (again.new, again.changed, again.unchanged) == (0, 0, 2)


def test_written_activities_are_write_once_but_state_rows_are_resent(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r1", [entry("invoice_sent:acme:1"), entry("company:acme:bigco.io", kind="company")])
    db.ledger.claim(ACCT, "activity", limit=10, run_id="r1")
    db.ledger.claim(ACCT, "company", limit=10, run_id="r1")
    db.ledger.mark([RowOutcome("invoice_sent:acme:1", "written", 9001), RowOutcome("company:acme:bigco.io", "written")])
    result = db.ledger.plan(
        ACCT, "r2", [entry("invoice_sent:acme:1", "v2"), entry("company:acme:bigco.io", "v2", kind="company")]
    )
    assert result.as_dict() == {"new": 0, "changed": 1, "unchanged": 1, "held": 0, "kept": 1}
    activity, company = db.ledger.get("invoice_sent:acme:1"), db.ledger.get("company:acme:bigco.io")
    assert activity is not None
    assert company is not None
    assert (activity.status, activity.payload_hash) == (LedgerStatus.WRITTEN, "hash-v1")
    assert (company.status, company.payload_hash) == (LedgerStatus.PENDING, "hash-v2")


def test_plan_rejects_unknown_kind(db: StateDB) -> None:
    with pytest.raises(ValueError, match="unknown ledger kind"):
        db.ledger.plan(ACCT, "r", [entry("x", kind="invoice")])


def test_plan_20k_rows(db: StateDB) -> None:
    n = 20_000
    started = time.perf_counter()
    first = db.ledger.plan(ACCT, "run1", (entry(f"invoice_sent:acme:{i:06d}") for i in range(n)))
    planned = time.perf_counter() - started
    started = time.perf_counter()
    second = db.ledger.plan(
        ACCT, "run2", (entry(f"invoice_sent:acme:{i:06d}", "v2" if i % 4 == 0 else "v1") for i in range(n))
    )
    replanned = time.perf_counter() - started
    print(f"[{db.dialect}] plan {n} new rows: {planned:.2f}s; re-plan with {n // 4} changed: {replanned:.2f}s")
    assert (first.new, first.changed, first.unchanged) == (n, 0, 0)
    assert (second.new, second.changed, second.unchanged) == (0, n // 4, n - n // 4)
    assert db.ledger.counts(ACCT) == {("activity", "pending"): n}
    changed = db.ledger.get("invoice_sent:acme:000004")
    assert changed is not None
    assert changed.payload_hash == "hash-v2"


def test_claim_order_limit_attempts_and_filters(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r1", [entry(f"c{i}") for i in (5, 3, 1, 4, 2)] + [entry("lead:x", kind="lead")])
    db.ledger.plan("other", "r1", [entry("o1")])
    first = db.ledger.claim(ACCT, "activity", limit=2, run_id="r2")
    assert [r.key for r in first] == ["c1", "c2"]
    assert {r.status for r in first} == {LedgerStatus.IN_FLIGHT}
    assert {r.attempts for r in first} == {1}
    assert len({r.batch_id for r in first}) == 1
    assert first[0].batch_id
    assert {r.run_id for r in first} == {"r2"}
    second = db.ledger.claim(ACCT, "activity", limit=10, run_id="r2")
    assert [r.key for r in second] == ["c3", "c4", "c5"]  # never the in-flight ones, not other kinds/accounts
    assert second[0].batch_id != first[0].batch_id
    assert db.ledger.claim(ACCT, "activity", limit=10, run_id="r2") == []
    assert db.ledger.claim(ACCT, "activity", limit=0, run_id="r2") == []

    db.ledger.mark([RowOutcome("c1", "failed", error="611 system error")])
    assert db.ledger.claim(ACCT, "activity", limit=10, run_id="r3", include_failed=False) == []
    assert db.ledger.claim(ACCT, "activity", limit=10, run_id="r3", max_attempts=1) == []
    retried = db.ledger.claim(ACCT, "activity", limit=10, run_id="r3")
    assert [(r.key, r.attempts) for r in retried] == [("c1", 2)]


def test_settle_and_claim_marks_the_finished_batch_and_claims_the_next_in_one_write(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r1", [entry(f"c{i}") for i in range(1, 7)])
    first = db.ledger.claim(ACCT, "activity", limit=2, run_id="r2")
    before_failures = utcnow()
    done = [RowOutcome("c1", "written", marketo_id=11), RowOutcome("c2", "failed", error="1004 lead not found")]
    second = db.ledger.settle_and_claim(done, ACCT, "activity", limit=3, run_id="r2", failed_before=before_failures)
    assert [r.key for r in first] == ["c1", "c2"]
    # c2 failed just now, after the cut-off: not claimed back by the load that failed it
    assert [r.key for r in second] == ["c3", "c4", "c5"]
    by_key = {r.key: r for r in db.ledger.iter_rows(ACCT, "activity")}
    assert (by_key["c1"].status, by_key["c1"].marketo_id) == (LedgerStatus.WRITTEN, "11")
    assert (by_key["c2"].status, by_key["c2"].last_error) == (LedgerStatus.FAILED, "1004 lead not found")
    # a later load (its cut-off after the failure) retries it; without a cut-off every failed row is claimable
    assert [
        r.key for r in db.ledger.settle_and_claim((), ACCT, "activity", limit=5, run_id="r3", failed_before=utcnow())
    ] == ["c2", "c6"]
    assert db.ledger.settle_and_claim([RowOutcome("c6", "written")], ACCT, "activity", limit=0, run_id="r3") == []
    assert {r.key: r.status for r in db.ledger.iter_rows(ACCT, "activity")}["c6"] is LedgerStatus.WRITTEN
    with pytest.raises(ValueError, match="in_flight"):
        db.ledger.settle_and_claim([RowOutcome("c3", "in_flight")], ACCT, "activity", limit=1, run_id="r3")


def test_concurrent_claimers_never_share_a_row(db: StateDB) -> None:
    keys = [f"k{i:04d}" for i in range(600)]
    db.ledger.plan(ACCT, "r1", [entry(k) for k in keys])
    got: list[list[str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claimer() -> None:
        try:
            while batch := db.ledger.claim(ACCT, "activity", limit=37, run_id="r2"):
                with lock:
                    got.append([r.key for r in batch])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    flat = [k for batch in got for k in batch]
    assert len(flat) == len(set(flat))
    assert sorted(flat) == keys
    assert db.ledger.counts(ACCT) == {("activity", "in_flight"): 600}


def test_mark_keeps_ids_truncates_errors_and_stamps_written(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r1", [entry("lead:acme:a@x.io", kind="lead"), entry("lead:acme:b@x.io", kind="lead")])
    db.ledger.claim(ACCT, "lead", limit=10, run_id="r1")
    db.ledger.mark(
        [
            RowOutcome("lead:acme:a@x.io", "written", marketo_id=555),
            RowOutcome("lead:acme:b@x.io", "failed", error="x" * 5000),
        ]
    )
    a, b = db.ledger.get("lead:acme:a@x.io"), db.ledger.get("lead:acme:b@x.io")
    assert a is not None
    assert b is not None
    assert (a.status, a.marketo_id, a.last_error) == (LedgerStatus.WRITTEN, "555", None)
    assert a.written_at is not None
    assert b.written_at is None
    assert b.last_error is not None
    assert len(b.last_error) == 2000
    # A later outcome without an id keeps the lead id.
    db.ledger.mark([RowOutcome("lead:acme:a@x.io", "failed", error="606 rate limit")])
    a = db.ledger.get("lead:acme:a@x.io")
    assert a is not None
    assert (a.status, a.marketo_id, a.last_error) == (LedgerStatus.FAILED, "555", "606 rate limit")
    assert db.ledger.marketo_ids(["lead:acme:a@x.io", "lead:acme:b@x.io", "lead:acme:none@x.io"]) == {
        "lead:acme:a@x.io": "555"
    }
    with pytest.raises(ValueError, match="unknown ledger status"):
        db.ledger.mark([RowOutcome("lead:acme:a@x.io", "done")])
    with pytest.raises(ValueError, match="claim"):
        db.ledger.mark([RowOutcome("lead:acme:a@x.io", "in_flight")])


def test_in_flight_reset_and_retry_failed(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r1", [entry("a1"), entry("a2"), entry("a3"), entry("c1", kind="company")])
    db.ledger.claim(ACCT, "activity", limit=10, run_id="r1")
    db.ledger.claim(ACCT, "company", limit=10, run_id="r1")
    assert [r.key for r in db.ledger.in_flight(ACCT)] == ["a1", "a2", "a3", "c1"]
    assert [r.key for r in db.ledger.in_flight(ACCT, "company")] == ["c1"]
    assert db.ledger.in_flight("other") == []
    db.ledger.mark([RowOutcome("a1", "written"), RowOutcome("a2", "failed", error="e")])
    assert db.ledger.reset_to_pending(["a3", "nope"]) == 1
    assert [r.key for r in db.ledger.in_flight(ACCT, "activity")] == []
    assert db.ledger.retry_failed(ACCT, "company") == 0
    assert db.ledger.retry_failed(ACCT) == 1
    a2 = db.ledger.get("a2")
    assert a2 is not None
    assert (a2.status, a2.attempts) == (LedgerStatus.PENDING, 0)
    assert [r.key for r in db.ledger.claim(ACCT, "activity", limit=10, run_id="r2", max_attempts=1)] == ["a2"]


def test_counts_and_failures(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r1", [entry(f"a{i}") for i in range(5)] + [entry("l1", kind="lead")])
    db.ledger.plan("other", "r1", [entry("o1")])
    db.ledger.claim(ACCT, "activity", limit=4, run_id="r2")
    db.ledger.mark(
        [
            RowOutcome("a0", "written"),
            RowOutcome("a1", "written"),
            RowOutcome("a2", "skipped", error="1004 lead not found"),
            RowOutcome("a3", "failed", error="604 timeout"),
        ]
    )
    assert db.ledger.counts(ACCT) == {
        ("activity", "written"): 2,
        ("activity", "skipped"): 1,
        ("activity", "failed"): 1,
        ("activity", "pending"): 1,
        ("lead", "pending"): 1,
    }
    assert db.ledger.counts(ACCT, run_id="r1") == {("activity", "pending"): 1, ("lead", "pending"): 1}
    assert db.ledger.counts(ACCT, since=utcnow() + timedelta(hours=1)) == {}
    assert sum(db.ledger.counts(ACCT, since=utcnow() - timedelta(hours=1)).values()) == 6
    failures = db.ledger.failures(ACCT)
    assert {(r.key, r.status, r.last_error) for r in failures} == {
        ("a2", LedgerStatus.SKIPPED, "1004 lead not found"),
        ("a3", LedgerStatus.FAILED, "604 timeout"),
    }
    assert len(db.ledger.failures(ACCT, limit=1)) == 1
    assert db.ledger.failures(ACCT, kind="lead") == []


def test_iter_rows_pages_in_key_order(db: StateDB) -> None:
    keys = [f"r{i:03d}" for i in range(50)]
    db.ledger.plan(ACCT, "r1", [entry(k) for k in reversed(keys)] + [entry("lead:z", kind="lead")])
    assert [r.key for r in db.ledger.iter_rows(ACCT, "activity", chunk_size=7)] == keys
    assert len(list(db.ledger.iter_rows(ACCT, chunk_size=7))) == 51
    db.ledger.claim(ACCT, "activity", limit=3, run_id="r2")
    assert [r.key for r in db.ledger.iter_rows(ACCT, status="in_flight")] == keys[:3]
    assert len(list(db.ledger.iter_rows(ACCT, status=[LedgerStatus.PENDING, "in_flight"]))) == 51


def test_overlapping_runs_each_report_the_writes_their_own_load_made(db: StateDB) -> None:
    """Two runs of one account overlap (a backfill beside the daily run): both plan the same facts, each load
    claims what is pending when it gets there. A run's counts are the writes its load made -- not the rows it
    planned, not everything of the first run -- and re-planning an unchanged row moves no credit."""
    keys = [f"a:{i}" for i in range(6)]
    db.ledger.plan(ACCT, "backfill__1", [entry(k) for k in keys[:4]])
    db.ledger.plan(ACCT, "scheduled__2", [entry(k) for k in keys[2:]])  # a:2, a:3 planned by both
    first = db.ledger.claim(ACCT, "activity", limit=3, run_id="scheduled__2")  # the daily run's load is first
    second = db.ledger.claim(ACCT, "activity", limit=10, run_id="backfill__1")
    assert {r.key for r in first} | {r.key for r in second} == set(keys)
    db.ledger.mark([RowOutcome(r.key, "written", marketo_id=1) for r in second])
    db.ledger.mark([RowOutcome(r.key, "written", marketo_id=1) for r in first])
    db.ledger.plan(ACCT, "manual__3", [entry(k) for k in keys])  # unchanged: nothing to send, no credit

    for run, claimed in (("scheduled__2", first), ("backfill__1", second)):
        assert db.ledger.counts(ACCT, run_id=run) == {("activity", "written"): len(claimed)}, run
    assert db.ledger.counts(ACCT, run_id="manual__3") == {}


def test_rows_read_back_carry_every_column_in_its_own_field(db: StateDB) -> None:
    # Rows are built from their columns by position: each field must get its own column's value.
    import dataclasses

    from airflow_provider_fbmkto.state.ledger_types import COLUMNS, LedgerRow

    assert [c.key for c in COLUMNS] == [f.name for f in dataclasses.fields(LedgerRow)]
    db.ledger.plan("acme", "r1", [("activity:acme:1", "activity", {"a": 1}, "h1")])
    (claimed,) = db.ledger.claim("acme", "activity", limit=10, run_id="r2")
    db.ledger.mark_sent([claimed.key])
    db.ledger.mark([RowOutcome(claimed.key, LedgerStatus.WRITTEN, 77, None)])
    row = db.ledger.get("activity:acme:1")
    assert row is not None
    assert (row.key, row.account, row.kind, row.payload, row.payload_hash) == (
        "activity:acme:1",
        "acme",
        "activity",
        {"a": 1},
        "h1",
    )
    assert (row.status, row.attempts, row.last_error, row.marketo_id, row.run_id) == (
        LedgerStatus.WRITTEN,
        1,
        None,
        "77",
        "r2",
    )
    assert row.batch_id == claimed.batch_id
    assert row.batch_id
    assert row.created_at <= row.updated_at
    assert row.written_at == row.updated_at
    assert row.sent_at is not None
    assert row.created_at <= row.sent_at <= row.written_at

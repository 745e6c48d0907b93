from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_fbmkto.state import StateDB

T0 = datetime(2025, 3, 4, 15, 0, tzinfo=timezone.utc)


def record(db: StateDB, delivery: str, *, account: str = "acme", at: datetime = T0, object_id: str = "77") -> bool:
    return db.events.record(
        account,
        name="invoice.sendByEmail",
        object_id=object_id,
        account_id="xZ9a",
        business_id="12",
        user_id=None,
        received_at=at,
        delivery_id=delivery,
    )


def test_record_ignores_duplicate_deliveries(db: StateDB) -> None:
    assert record(db, "d1") is True
    assert record(db, "d1") is False
    assert record(db, "d1", account="beta") is True  # per account
    assert record(db, "d2") is True
    assert [e.delivery_id for e in db.events.pending("acme")] == ["d1", "d2"]


def test_record_is_race_safe(db: StateDB) -> None:
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        try:
            barrier.wait()
            results.append(record(db, "same-delivery"))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]
    assert len(db.events.pending("acme")) == 1


def test_pending_order_limit_and_consumption(db: StateDB) -> None:
    assert db.events.has_pending("acme") is False
    record(db, "late", at=T0 + timedelta(minutes=5), object_id="2")
    record(db, "early", at=T0, object_id="1")
    record(db, "other-acct", account="beta")
    events = db.events.pending("acme")
    assert [(e.delivery_id, e.object_id) for e in events] == [("early", "1"), ("late", "2")]
    first = events[0]
    assert (first.account, first.name, first.account_id, first.business_id, first.user_id) == (
        "acme",
        "invoice.sendByEmail",
        "xZ9a",
        "12",
        None,
    )
    assert first.received_at == T0
    assert [e.delivery_id for e in db.events.pending("acme", limit=1)] == ["early"]
    assert db.events.has_pending("acme") is True

    db.events.mark_consumed([first.id], run_id="run-1")
    assert [e.delivery_id for e in db.events.pending("acme")] == ["late"]
    db.events.mark_consumed([e.id for e in events], run_id="run-2")
    assert db.events.has_pending("acme") is False
    assert db.events.has_pending("beta") is True
    assert db.events.purge("acme", datetime.now(timezone.utc) + timedelta(seconds=5)) == 2
    assert db.events.pending("beta")[0].delivery_id == "other-acct"


def test_record_refuses_naive_time(db: StateDB) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        record(db, "d", at=datetime(2025, 1, 1, 12, 0))


def test_watermarks(db: StateDB) -> None:
    wm = db.watermarks
    assert wm.get("acme", "marketo_leads") is None
    berlin = timezone(timedelta(hours=2))
    wm.set("acme", "marketo_leads", datetime(2025, 5, 1, 12, 0, tzinfo=berlin))
    got = wm.get("acme", "marketo_leads")
    assert got == datetime(2025, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert got is not None
    assert got.utcoffset() == timedelta(0)
    assert wm.set_max("acme", "marketo_leads", T0) == datetime(2025, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert wm.get("acme", "marketo_leads") == datetime(2025, 5, 1, 10, 0, tzinfo=timezone.utc)
    later = datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert wm.set_max("acme", "marketo_leads", later) == later
    assert wm.set_max("acme", "new_mark", T0) == T0
    wm.set("acme", "marketo_leads", T0)  # plain set may move back
    assert wm.get("acme", "marketo_leads") == T0
    assert wm.get("beta", "marketo_leads") is None
    wm.delete("acme", "marketo_leads")
    assert wm.get("acme", "marketo_leads") is None
    with pytest.raises(ValueError, match="timezone-aware"):
        wm.set("acme", "x", datetime(2025, 1, 1))


def test_run_log(db: StateDB) -> None:
    day = timedelta(days=1)
    db.runs.start("acme", "scheduled__1", window_start=T0 - day, window_end=T0, now=T0)
    db.runs.finish("acme", "scheduled__1", status="success", summary={"written": 3}, now=T0 + timedelta(minutes=2))
    db.runs.start("acme", "scheduled__2", window_start=T0, window_end=T0 + day, now=T0 + day)
    db.runs.finish("acme", "scheduled__2", status="failed", now=T0 + day)
    last = db.runs.last_success("acme")
    assert last is not None
    assert (last.run_id, last.window_end, last.summary) == ("scheduled__1", T0, {"written": 3})
    assert [r.run_id for r in db.runs.recent("acme")] == ["scheduled__2", "scheduled__1"]
    assert db.runs.last_success("beta") is None
    rec = db.runs.get("acme", "scheduled__2")
    assert rec is not None
    assert rec.status == "failed"
    with pytest.raises(ValueError, match="run status"):
        db.runs.finish("acme", "scheduled__2", status="ok")


def test_a_failing_event_is_retried_then_marked_failed_and_stops_blocking(db: StateDB) -> None:
    record(db, "bad", object_id="404")
    record(db, "good", at=T0 + timedelta(minutes=1), object_id="5")
    bad = db.events.pending("acme")[0]
    assert bad.object_id == "404"

    first = db.events.record_failure(bad, "FreshBooks GET invoice 404 failed with HTTP 404", "run-1", limit=3)
    assert (first.attempts, first.failed) == (1, False)
    assert [e.delivery_id for e in db.events.pending("acme")] == ["bad", "good"]  # still retried
    assert [f.event_id for f in db.events.failures("acme", failed=False)] == [bad.id]
    assert db.events.failures("acme", failed=True) == []

    db.events.record_failure(bad, "again", "run-2", limit=3)
    third = db.events.record_failure(bad, "still 404", "run-3", limit=3)
    assert (third.attempts, third.failed, third.reason, third.last_run_id) == (3, True, "still 404", "run-3")
    assert [e.delivery_id for e in db.events.pending("acme")] == ["good"]  # no longer blocks the others
    (failed,) = db.events.failures("acme", failed=True)
    assert (failed.name, failed.object_id, failed.attempts, failed.received_at) == ("invoice.sendByEmail", "404", 3, T0)
    assert db.events.failures("acme", run_id="run-3") == [failed]
    assert db.events.failures("acme", run_id="run-2") == []
    assert db.events.failures("beta") == []
    # A later failure (another process still held it) does not count again or move its failure time.
    later = db.events.record_failure(bad, "late", "run-4", limit=3)
    assert (later.attempts, later.failed_at) == (4, third.failed_at)


def test_give_up_marks_an_event_failed_at_once_and_has_pending_skips_failed(db: StateDB) -> None:
    record(db, "foreign")
    (event,) = db.events.pending("acme")
    got = db.events.record_failure(event, "for another FreshBooks account", "run-1", limit=3, give_up=True)
    assert (got.attempts, got.failed) == (1, True)
    assert db.events.pending("acme") == []
    assert db.events.has_pending("acme") is False


def test_purge_deletes_old_consumed_and_failed_events_of_the_account_only(db: StateDB) -> None:
    for delivery in ("consumed", "failed", "retrying", "waiting"):
        record(db, delivery)
    record(db, "beta-consumed", account="beta")
    by = {e.delivery_id: e for e in db.events.pending("acme")}
    db.events.mark_consumed([by["consumed"].id], "run-1")
    db.events.mark_consumed([e.id for e in db.events.pending("beta")], "run-1")
    db.events.record_failure(by["failed"], "gone", "run-1", limit=1)
    db.events.record_failure(by["retrying"], "gone", "run-1", limit=3)

    assert db.events.purge("acme", datetime.now(timezone.utc) - timedelta(days=1)) == 0  # too recent
    assert db.events.purge("acme", datetime.now(timezone.utc) + timedelta(seconds=5)) == 2
    assert sorted(e.delivery_id for e in db.events.pending("acme")) == ["retrying", "waiting"]
    assert [f.event_id for f in db.events.failures("acme")] == [by["retrying"].id]  # its failure row stays
    assert db.events.purge("beta", datetime.now(timezone.utc) + timedelta(seconds=5)) == 1

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
    assert db.events.purge_consumed(datetime.now(timezone.utc) + timedelta(seconds=5)) == 2
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

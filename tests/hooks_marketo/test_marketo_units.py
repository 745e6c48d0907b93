"""Pure parts of the Marketo hook: connection parsing, the verdict table, the limiter, batching, schema specs."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.hooks.marketo_limits import MarketoRateLimiter, stop_until_reset
from airflow_provider_fbmkto.hooks.marketo_schema import (
    ACTIVITY_TYPES,
    COMPANY_FIELDS,
    LEAD_FIELDS,
    activity_types_for,
    missing_attributes,
)
from airflow_provider_fbmkto.hooks.marketo_types import (
    MAX_BODY_BYTES,
    MarketoCreds,
    RecordResult,
    Verdict,
    chunks,
    classify_answer,
    dumps,
)
from airflow_provider_fbmkto.sync.plan import ActivityTypeNames


def _conn(extra: dict[str, Any] | None = None, **fields: Any) -> Connection:
    base: dict[str, Any] = {
        "conn_id": "mk",
        "conn_type": "marketo",
        "host": "https://123-ABC-456.mktorest.com/rest",
        "login": "cid",
        "password": "s3cret-value",
    }
    base.update(fields)
    return Connection(**base, extra=json.dumps(extra or {}))


def test_creds_defaults_and_base_url() -> None:
    creds = MarketoCreds.from_connection(_conn())
    assert creds.base_url == "https://123-ABC-456.mktorest.com"
    assert creds.instance == "123-abc-456.mktorest.com"
    assert (creds.calls_per_window, creds.window_seconds, creds.max_concurrency) == (97, 20.0, 8)
    assert (creds.daily_budget, creds.budget_reserve, creds.budget_limit) == (45_000, 0, 45_000)
    assert creds.time_scale == 1.0
    assert "s3cret-value" not in repr(creds)


def test_creds_accepts_plain_and_prefixed_extras() -> None:
    creds = MarketoCreds.from_connection(
        _conn(
            {"calls_per_window": "50", "extra__marketo__window_seconds": 2, "daily_budget": 1000, "budget_reserve": 100}
        )
    )
    assert (creds.calls_per_window, creds.window_seconds, creds.budget_limit) == (50, 2.0, 900)
    assert creds.time_scale == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("extra", "fields", "needle"),
    [
        ({"headers": "x"}, {}, "unknown extra 'headers'"),
        ({"calls_per_window": "many"}, {}, "'calls_per_window' must be a number"),
        ({"max_concurrency": 11}, {}, "max_concurrency <= 10"),
        ({"window_seconds": 0}, {}, "'window_seconds' must be positive"),
        ({"daily_budget": 100, "budget_reserve": 100}, {}, "budget_reserve must be below daily_budget"),
        ({}, {"password": None}, "has no password"),
    ],
    ids=["unknown", "not-number", "over-limit", "zero", "reserve", "no-secret"],
)
def test_creds_errors_name_the_problem(extra: dict[str, Any], fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match="connection 'mk'") as err:
        MarketoCreds.from_connection(_conn(extra, **fields))
    assert needle in str(err.value)
    assert "s3cret-value" not in str(err.value)


@pytest.mark.parametrize(
    ("status", "codes", "verdict"),
    [
        (200, [], Verdict.OK),
        (200, ["1003"], Verdict.OK),
        (200, ["601"], Verdict.TOKEN),
        (200, ["602"], Verdict.TOKEN),
        (200, ["606"], Verdict.RATE),
        (200, ["615"], Verdict.RATE),
        (429, [], Verdict.RATE),
        (200, ["604"], Verdict.BACKOFF),
        (200, ["713"], Verdict.BACKOFF),
        (503, [], Verdict.BACKOFF),
        (200, ["1029"], Verdict.QUEUE_FULL),
        (200, ["607"], Verdict.QUOTA),
        (413, [], Verdict.OK),
    ],
)
def test_verdicts(status: int, codes: list[str], verdict: Verdict) -> None:
    assert classify_answer(status, codes) is verdict


def test_limiter_window_paces_calls_with_a_fake_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = MarketoRateLimiter(3, 10.0, 5, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        with limiter.slot():
            pass
    assert slept == []
    with limiter.slot():
        pass
    assert slept == [pytest.approx(10.0)]  # the 4th waits until the first leaves the window
    assert limiter.window_remaining() == pytest.approx(10.0)  # only the 4th call is in the window now
    limiter.pause(4.0)  # after a 606 every caller holds off, although our own window has room
    with limiter.slot():
        pass
    assert slept == [pytest.approx(10.0), pytest.approx(4.0)]


class _FakeTime:
    """A clock the test moves by hand; ``sleep`` moves it too and records the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_counts_each_call_from_its_answer() -> None:
    t = _FakeTime()
    limiter = MarketoRateLimiter(2, 20.0, 5, clock=t, sleep=t.sleep)
    with limiter.slot():  # sent at 1000, answered at 1003: it arrived some time before 1003, for certain
        t.now += 3.0
    with limiter.slot():  # sent and answered at 1003
        pass
    with limiter.slot():  # the window is full: waits until the first answer ages out, 1003 + 20
        pass
    assert t.slept == [pytest.approx(20.0)]
    assert t.now == pytest.approx(1023.0)


def test_limiter_keeps_a_call_in_flight_in_the_window_whatever_its_age() -> None:
    t = _FakeTime()
    limiter = MarketoRateLimiter(1, 20.0, 5, clock=t, sleep=t.sleep)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the waiting caller sees the first call still in flight 30 s on
        waits.append(seconds)
        if len(waits) == 3:
            raise RuntimeError("stop")
        t.now += seconds

    with limiter.slot():
        t.now += 30.0
        limiter._sleep = sleep
        with pytest.raises(RuntimeError):
            limiter._take_window_place()  # another thread's call: no place while the first is in flight
    assert waits == [pytest.approx(0.02)] * 3


def test_limiter_counts_the_token_fetch_inside_a_call_by_its_own_answer() -> None:
    t = _FakeTime()
    limiter = MarketoRateLimiter(3, 20.0, 5, clock=t, sleep=t.sleep)
    with limiter.slot():  # the REST call's slot, taken at 1000
        with limiter.slot():  # its token fetch, answered at 1002
            t.now += 2.0
        t.now += 3.0  # then the REST call is answered at 1005
    with limiter.slot():
        pass
    with limiter.slot():  # full (3): the token fetch ages out first, at 1022
        pass
    assert t.slept == [pytest.approx(17.0)]
    with limiter.slot():  # next the REST call, answered at 1005: free at 1025
        pass
    assert t.slept == [pytest.approx(17.0), pytest.approx(3.0)]


def test_limiter_caps_concurrency_and_is_reentrant() -> None:
    limiter = MarketoRateLimiter(1000, 1.0, 3)
    barrier = threading.Barrier(8)
    seen: list[int] = []
    lock = threading.Lock()
    active = [0]

    def work() -> None:
        barrier.wait()
        with limiter.slot():
            with lock:
                active[0] += 1
                seen.append(active[0])
            with limiter.slot():  # nested (the token fetch inside a call): no second place, no deadlock
                time.sleep(0.02)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert max(seen) <= 3
    assert limiter.max_in_flight == 3


def test_chunks_respect_count_and_body_size() -> None:
    def envelope(chunk: list[Any]) -> dict[str, Any]:
        return {"action": "createOrUpdate", "input": chunk}

    small = [{"email": f"u{i}@x.com"} for i in range(700)]
    parts = list(chunks(small, envelope, 300))
    assert [(s, len(c)) for s, c in parts] == [(0, 300), (300, 300), (600, 100)]
    big = [{"email": f"u{i}@x.com", "notes": "x" * 5000} for i in range(300)]  # ~1.5 MB in all
    parts = list(chunks(big, envelope, 300))
    assert len(parts) == 2
    assert sum(len(c) for _, c in parts) == 300
    assert all(len(dumps(envelope(c))) <= MAX_BODY_BYTES for _, c in parts)
    assert [s for s, _ in parts] == [0, len(parts[0][1])]


def test_record_result_reads_reasons_and_errors() -> None:
    a = RecordResult.from_marketo(3, {"id": 7, "status": "created"})
    b = RecordResult.from_marketo(4, {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]})
    c = RecordResult.from_marketo(5, {"status": "skipped", "errors": [{"code": "1006", "message": "Field 'x'"}]})
    assert (a.index, a.id, a.status, a.ok) == (3, 7, "created", True)
    assert (b.status, b.reasons[0].code, b.ok) == ("skipped", "1004", False)
    assert c.reasons[0].code == "1006"


def test_a_607_stops_the_instance_until_midnight_us_central() -> None:
    from datetime import datetime, timezone

    # The stop lasts until Marketo's quota day ends: the next midnight America/Chicago (05:00 or 06:00 UTC).
    until = stop_until_reset("https://stop-test.mktorest.com")
    assert until.tzinfo is not None
    assert until.astimezone(timezone.utc).hour in (5, 6)
    assert 0 < (until - datetime.now(timezone.utc)).total_seconds() <= 25 * 3600


def test_schema_matches_design_names() -> None:
    assert [t.api_name for t in ACTIVITY_TYPES] == ["fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"]
    by_name = {t.api_name: t for t in ACTIVITY_TYPES}
    assert by_name["fbInvoiceSent"].primary.name == "invoiceNumber"
    assert by_name["fbPaymentReceived"].primary.name == "paymentId"
    assert {a.name for a in by_name["fbInvoiceOverdue"].attributes} >= {
        "fbAccountId",
        "amount",
        "currency",
        "dueDate",
        "daysOverdue",
    }
    assert "invoiceNumber" in {a.name for a in by_name["fbPaymentReceived"].attributes}
    assert [f.name for f in LEAD_FIELDS] == ["fbPaymentStatus", "fbOutstandingBalance", "fbLastPaymentDate"]
    assert {f.name for f in COMPANY_FIELDS} == {
        "fbPaymentTerms",
        "fbOutstandingBalance",
        "fbInvoiceCount",
        "fbPaymentStatus",
        "fbLastPaymentDate",
        "fbAverageDaysToPay",
    }


def test_an_accounts_type_names_keep_the_attributes_and_make_every_label_unique() -> None:
    assert activity_types_for(ActivityTypeNames()) == ACTIVITY_TYPES
    acme = activity_types_for(ActivityTypeNames(invoice_sent="acmeSent", invoice_overdue="acmeOverdue"))
    assert [t.api_name for t in acme] == ["acmeSent", "fbPaymentReceived", "acmeOverdue"]
    assert [t.attributes for t in acme] == [t.attributes for t in ACTIVITY_TYPES]
    both = (*ACTIVITY_TYPES, *acme[::2])
    for label in ("name", "trigger_name", "filter_name"):
        values = [getattr(t, label).lower() for t in both]
        assert len(set(values)) == len(values), label  # Marketo refuses a second type with the same label


def test_missing_attributes_count_secondary_attributes_only() -> None:
    spec = ACTIVITY_TYPES[1]  # Payment Received: invoiceNumber is a secondary attribute there
    described = {
        "primaryAttribute": {"apiName": "invoiceNumber", "name": "Invoice Number"},
        "attributes": [{"apiName": "amount", "name": "Amount"}, {"apiName": "currency", "name": "Currency"}],
    }
    assert [a.name for a in missing_attributes(spec, described)] == ["fbAccountId", "invoiceNumber"]

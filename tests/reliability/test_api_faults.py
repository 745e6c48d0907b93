"""API faults through real DAG runs.

Marketo: quota (607) mid-run, token loss (601/602) mid-load, transient codes (604/608/611/615, 502), 413 and 414.
FreshBooks: 429, 5xx and gateway timeouts during the extract; a revoked refresh token.

Each test counts, at the end, what Marketo holds against what it should (``Tally``): duplicates and lost
records must be 0, and the faults must show on the emulator's call log (so a test whose fault never fired
fails instead of passing vacuously).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import BASE_CONFIG, World, day
from tests.reliability.conftest import (
    ACTIVITY_WRITES,
    Figures,
    Tally,
    error_text,
    failed,
    first_line,
    freshbooks_answers,
    marketo_answers,
    open_world,
    overdue,
    paid,
    script_faults,
    sent,
    set_conn,
)

pytestmark = pytest.mark.e2e

RETRYING = BASE_CONFIG.replace("retries: 0 ", "retries: 1 ")
LEADS = "/rest/v1/leads.json"
COMPANIES = "/rest/v1/companies.json"
ACTIVITY_READS = "/rest/v1/activities.json"


def _client_with_invoices(w: World, email: str, n: int, **client: Any) -> list[dict[str, Any]]:
    c = w.fb.add_client(fname="Dana", lname="Cole", email=email, **client)
    return [
        w.fb.add_invoice(customerid=c["id"], create_date=day(5).isoformat(), due_offset_days=30, amount=f"{i + 1}.00")
        for i in range(n)
    ]


def test_607_mid_run_fails_clearly_and_after_the_reset_a_rerun_writes_exactly_the_rest(
    airflow_home, tmp_path, figures: Figures
):
    """The daily quota runs out right after the first of two activity batches (301 activities): the load fails
    with the quota error naming the reset; after Marketo's daily counter resets, a rerun sends only the rest."""
    with open_world(airflow_home, tmp_path) as w:
        set_conn(w, "marketo_default", max_concurrency=1)  # one batch at a time: which batch is cut is fixed
        invoices = _client_with_invoices(w, "dana@initech.io", 301)
        expect = Tally({sent("dana@initech.io", inv) for inv in invoices}, {"dana@initech.io"}, {"fbmkto:initech.io"})

        limits, take = w.mkto.model.limits, w.mkto.faults.take

        def quota_runs_out_after_this_call(path: str) -> str | None:
            if path == ACTIVITY_WRITES and limits.daily_quota > limits.used_today():
                limits.daily_quota = limits.used_today()  # this call was admitted; every later one gets 607
            return take(path)

        w.mkto.faults.take = quota_runs_out_after_this_call  # type: ignore[method-assign]
        out = failed(w, day(4))
        message = error_text(first_line(out, "QuotaExhausted", "607"))
        assert "Marketo daily API quota (607) is exhausted" in message
        assert "until it resets at midnight US/Central" in message
        assert len(w.mkto.activities()) == 300  # the first batch landed, the second was refused
        refused = marketo_answers(w, "607")
        assert refused == 1  # and nothing more was sent to Marketo from that process until the reset

        w.mkto.faults.take = take  # type: ignore[method-assign]
        limits.reset()  # midnight US/Central: the daily counter starts again
        limits.daily_quota = 50_000
        writes_before = [c for c in w.mkto.calls if c.path == ACTIVITY_WRITES]
        w.ok(day(4))
        rerun_writes = [c for c in w.mkto.calls if c.path == ACTIVITY_WRITES][len(writes_before) :]
        assert [len(c.body["input"]) for c in rerun_writes] == [1]  # exactly the rest, nothing resent
        counts = expect.check(w)
        figures.row(
            "marketo_607",
            order=30,
            row="Marketo 607 daily quota exhausted mid-run",
            faults={"607 answers": refused},
            runs=2,
            counts=counts,
            outcome="load fails with QuotaExhausted naming the reset; rerun after the reset sends only the 1 unsent",
        )


def test_marketo_error_codes_413_and_414_mid_load_are_absorbed_or_retried_without_duplicates(
    airflow_home, tmp_path, figures: Figures
):
    """One DAG run (its load retried once by Airflow). Faults, in the order the run meets them:

    * companies: 601 (invalid token) -> new token, the same call again;
    * leads: 602 (expired token), 604, 615, HTTP 502 -> each retried in place (an upsert is idempotent);
    * activity batch 1 of 2 (300): HTTP 413 -> sent again as two halves of 150; the first half meets 608 ->
      retried (Marketo never applied it);
    * activity batch 2 of 2 (1): 602 (token lost mid-load) -> new token; then 611 (may have been applied) ->
      not resent blindly: the batch is in doubt, the load fails, Airflow retries it, the retry reads the batch
      back (not there), waits until Marketo can no longer apply it late (2 x ``request_timeout`` after the
      send), reads it back again (still not there) and sends it once;
    * the retry's read-back of activities: HTTP 414 -> sent again as POST with ``_method=GET``.
    """
    with open_world(airflow_home, tmp_path, RETRYING) as w:
        # batches one after the other: the script is exact; a 5 s request timeout bounds the late-write wait
        set_conn(w, "marketo_default", max_concurrency=1, request_timeout=5)
        invoices = _client_with_invoices(w, "dana@initech.io", 301)
        expect = Tally({sent("dana@initech.io", inv) for inv in invoices}, {"dana@initech.io"}, {"fbmkto:initech.io"})
        script_faults(w, COMPANIES, {1: "601"})
        script_faults(w, LEADS, {1: "602", 2: "604", 3: "615", 4: "502"})
        script_faults(w, ACTIVITY_WRITES, {1: "413", 2: "608", 5: "602", 6: "611"})
        script_faults(w, ACTIVITY_READS, {1: "414"})

        out = w.ok(day(4))
        assert "new_state=up_for_retry" in out  # the in-doubt batch failed the first try of the load
        assert "{'reset': 1, 'confirmed_written': 0, 'left_to_their_run': 0}" in out  # read back: not there
        writes = [(c.status, c.codes, len(c.body["input"])) for c in w.mkto.calls if c.path == ACTIVITY_WRITES]
        assert writes == [
            (413, [], 300),
            (200, ["608"], 150),
            (200, [], 150),
            (200, [], 150),
            (200, ["602"], 1),
            (200, ["611"], 1),
            (200, [], 1),
        ]
        reads = [(c.method, c.effective_method, c.status) for c in w.mkto.calls if c.path == ACTIVITY_READS]
        assert reads == [("GET", "GET", 414), ("POST", "GET", 200), ("GET", "GET", 200)]  # before and after the wait
        assert "for a late write before reading them back again" in out
        counts = expect.check(w)
        codes = ("601", "602", "604", "608", "611", "615", "502", "413", "414")
        faults = {code: marketo_answers(w, code) for code in codes}
        assert all(faults.values()), faults
        figures.row(
            "marketo_601_602",
            order=40,
            row="Marketo 601/602 token invalid/expired mid-load",
            faults={k: faults[k] for k in ("601", "602")},
            runs=1,
            counts=counts,
            outcome="a new token, then the same call once more",
        )
        figures.row(
            "marketo_transient",
            order=50,
            row="Marketo 604/608/611 (and 615, HTTP 502) mid-load",
            faults={k: faults[k] for k in ("604", "608", "611", "615", "502")},
            runs=1,
            counts=counts,
            outcome="idempotent calls and 608 retried in place; 611 on an activity write leaves the batch in doubt: "
            "Airflow's retry reads it back (not there) and sends it once",
        )
        figures.row(
            "marketo_413_414",
            order=60,
            row="Marketo HTTP 413 (body too large) and 414 (URL too long)",
            faults={k: faults[k] for k in ("413", "414")},
            runs=1,
            counts=counts,
            outcome="413: the batch is sent again as two halves; 414: the read is sent again as POST with _method=GET",
        )


def _billing(w: World) -> Tally:
    """Two clients: an invoice sent, a payment received and an invoice gone overdue in [day(5), day(4))."""
    ann = w.fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
    cat = w.fb.add_client(fname="Cat", lname="Poe", email="cat@gmail.com")
    inv = w.fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="100.00")
    old = w.fb.add_invoice(customerid=ann["id"], create_date=day(40).isoformat(), due_offset_days=30, amount="80.00")
    pay = w.fb.add_payment(invoiceid=old["id"], amount="80.00", date=day(5).isoformat())
    late = w.fb.add_invoice(customerid=cat["id"], create_date=day(20).isoformat(), due_offset_days=14, amount="250.00")
    return Tally(
        {sent("ann@bigco.io", inv), paid("ann@bigco.io", pay), overdue("cat@gmail.com", late)},
        {"ann@bigco.io", "cat@gmail.com"},
        {"fbmkto:bigco-holdings"},
    )


def test_revoked_refresh_token_then_429_5xx_and_gateway_timeouts_during_extract(
    airflow_home, tmp_path, figures: Figures
):
    """Run 1: the stored refresh token was revoked -> the extract fails naming ``fbmkto authorize``, nothing is
    written. After re-authorizing, run 2 meets 429, 500, 502, 503 and a stalled call answered 504 while
    extracting -> each is retried (Retry-After honoured) and the run writes exactly the expected records."""
    with open_world(airflow_home, tmp_path) as w:
        expect = _billing(w)
        w.fb.expire_access_tokens()  # the next call needs a refresh ...
        w.fb.revoke_refresh_tokens()  # ... and the stored refresh token no longer works
        out = failed(w, day(4))
        message = error_text(first_line(out, "ReauthorizationRequired"))
        assert "fbmkto authorize --conn-id freshbooks_acme" in message
        assert w.mkto.leads() == []
        assert w.mkto.activities() == []
        assert w.mkto.companies() == []
        refused = sum(1 for c in list(w.fb.calls) if c.path == "/auth/oauth/token" and c.status in (400, 401))
        assert refused == 1  # one refresh attempt, no hammering

        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        # One fault per listing (and a second on two of them), so no single call backs off for long.
        base = f"/accounting/account/{w.fb.account_id}"
        w.fb.inject_fault("429", path_prefix=f"{base}/users/clients", retry_after=1)
        w.fb.inject_fault("500", path_prefix=f"{base}/invoices/invoices")
        w.fb.inject_fault("503", path_prefix=f"{base}/invoices/invoices", retry_after=1)
        w.fb.inject_fault("502", path_prefix=f"{base}/payments/payments")
        w.fb.inject_fault("timeout", path_prefix=f"{base}/payments/payments", delay=2.0)  # stalls, then 504
        w.ok(day(4))
        assert w.fb.faults.pending() == []
        faults = {str(s): freshbooks_answers(w, s) for s in (429, 500, 502, 503, 504)}
        assert faults == {"429": 1, "500": 1, "502": 1, "503": 1, "504": 1}
        counts = expect.check(w)
        figures.row(
            "freshbooks_revoked",
            order=120,
            row="FreshBooks refresh token revoked",
            faults={"refused refresh": refused},
            runs=2,
            counts=counts,
            outcome=f"extract fails with {message}; nothing written; after `fbmkto authorize` the rerun completes",
        )
        figures.row(
            "freshbooks_429_5xx_timeouts",
            order=110,
            row="FreshBooks 429, 5xx and gateway timeouts during extract",
            faults={"429": 1, "500": 1, "502": 1, "503": 1, "504 after a 2 s stall": 1},
            runs=2,
            counts=counts,
            outcome="each call retried with backoff (Retry-After honoured); the run after re-authorizing succeeds "
            "with exact records (shares its runs with the revoked-token row)",
        )

"""Bounded automatic retries of skipped rows whose cause may go away (state/skip_retries.py, pipeline/reasons.py)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_fbmkto.pipeline.reasons import heals_by_itself, no_activity_type, no_lead
from airflow_provider_fbmkto.state import LedgerStatus, RowOutcome, StateDB

ACCT = "acme"
WAITING = no_lead("bob@initech.io", "the account is update-only")
DRAFT = "1013 Activity type 7 ('fbInvoiceSent') is a draft; approve it first"
BAD_DATA = "1003 Invalid data"


def entry(key: str, kind: str = "activity") -> tuple[str, str, dict[str, Any], str]:
    return (key, kind, {"key": key}, "hash")


def skip(db: StateDB, reasons: dict[str, str]) -> None:
    for key in reasons:
        db.ledger.claim(ACCT, db.ledger.get(key).kind, limit=1000, run_id="r")  # type: ignore[union-attr]
    db.ledger.mark(RowOutcome(k, LedgerStatus.SKIPPED, None, why) for k, why in reasons.items())


@pytest.mark.parametrize(
    ("reason", "heals"),
    [
        (WAITING, True),
        (no_activity_type("fbInvoiceSent", "marketo_default"), True),
        (DRAFT, True),
        ("1006 Field 'fbAmount' not found", True),
        ("1008 Access denied to partition", True),
        ("1004 Lead not found", True),
        (BAD_DATA, False),
        ("1018 CRM Enabled", False),
        ("413 record is over Marketo's 1 MB request limit; not sent", False),
        ("skipped by Marketo (no reason given)", False),
        ("1003 Invalid data; 1013 Object not found", True),
    ],
    ids=lambda v: str(v)[:24],
)
def test_which_reasons_heal_by_themselves(reason: str, heals: bool) -> None:
    assert heals_by_itself(reason) is heals


def test_requeue_is_bounded_per_row_and_a_replay_starts_again(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r0", [entry("a:1"), entry("a:2"), entry("a:3"), entry("l:1", "lead")])
    reasons = {"a:1": WAITING, "a:2": DRAFT, "a:3": BAD_DATA, "l:1": WAITING}
    skip(db, reasons)

    for attempt in range(1, 3):
        outcome = db.skip_retries.requeue(ACCT, heals_by_itself, limit=2)
        assert (outcome.requeued, outcome.exhausted) == (3, 0), attempt
        assert {k: str(db.ledger.get(k).status) for k in reasons} == {  # type: ignore[union-attr]
            "a:1": "pending",
            "a:2": "pending",
            "a:3": "skipped",  # a data problem: the record must change first
            "l:1": "pending",
        }
        skip(db, {k: v for k, v in reasons.items() if k != "a:3"})  # Marketo refuses them again
    assert db.skip_retries.counts(reasons) == {"a:1": 2, "a:2": 2, "l:1": 2}

    outcome = db.skip_retries.requeue(ACCT, heals_by_itself, limit=2)
    assert (outcome.requeued, outcome.exhausted) == (0, 3)  # retries used up: they wait for a replay
    assert str(db.ledger.get("a:1").status) == "skipped"  # type: ignore[union-attr]

    assert db.ledger.retry_failed(ACCT, "lead", include_skipped=True) == 1  # a replay of the leads only
    assert db.skip_retries.counts(reasons) == {"a:1": 2, "a:2": 2}
    assert db.ledger.retry_failed(ACCT, include_skipped=True) == 3
    assert db.skip_retries.counts(reasons) == {}


def test_limit_zero_never_requeues_and_written_rows_forget_their_count(db: StateDB) -> None:
    db.ledger.plan(ACCT, "r0", [entry("a:1")])
    skip(db, {"a:1": WAITING})
    assert db.skip_retries.requeue(ACCT, heals_by_itself, limit=0).exhausted == 1
    assert db.skip_retries.requeue(ACCT, heals_by_itself, limit=5).requeued == 1
    db.ledger.claim(ACCT, "activity", limit=10, run_id="r1")
    db.ledger.mark([RowOutcome("a:1", LedgerStatus.WRITTEN, 9)])
    db.skip_retries.requeue(ACCT, heals_by_itself, limit=5)
    assert db.skip_retries.counts(["a:1"]) == {}


def test_other_accounts_rows_are_left_alone(db: StateDB) -> None:
    db.ledger.plan("globex", "r0", [entry("g:1")])
    db.ledger.claim("globex", "activity", limit=10, run_id="r")
    db.ledger.mark([RowOutcome("g:1", LedgerStatus.SKIPPED, None, WAITING)])
    assert db.skip_retries.requeue(ACCT, heals_by_itself, limit=5).requeued == 0
    assert str(db.ledger.get("g:1").status) == "skipped"  # type: ignore[union-attr]

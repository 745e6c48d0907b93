"""Per-account counts and the daily budget share (``daily_budget_share``) of the state DB's call budget."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from airflow_provider_fbmkto.state import BudgetExhausted, StateDB
from airflow_provider_fbmkto.state.budget import ShareExhausted

NOW = datetime(2025, 6, 2, 15, 0, tzinfo=timezone.utc)
INSTANCE = "123-ABC-456"


def test_calls_are_counted_per_account_and_a_share_stops_only_that_account(db: StateDB) -> None:
    for _ in range(3):
        db.budget.spend(INSTANCE, now=NOW, limit=100, account="acme", account_limit=3)
    with pytest.raises(ShareExhausted) as caught:
        db.budget.spend(INSTANCE, now=NOW, limit=100, account="acme", account_limit=3)
    assert isinstance(caught.value, BudgetExhausted)  # every existing budget stop handles it too
    assert (caught.value.account, caught.value.used, caught.value.limit) == ("acme", 3, 3)
    assert "daily_budget_share" in str(caught.value)
    assert "Raise daily_budget_share" in str(caught.value)
    # The refused spend counted nowhere: not for the account, not for the instance.
    assert db.budget.used(INSTANCE, now=NOW) == 3
    assert db.budget.used_by_accounts(INSTANCE, now=NOW) == {"acme": 3}
    # Another account of the instance still sends; so does a spend on no account's behalf.
    db.budget.spend(INSTANCE, 5, now=NOW, limit=100, account="globex", account_limit=50)
    db.budget.spend(INSTANCE, now=NOW, limit=100)
    assert db.budget.used(INSTANCE, now=NOW) == 9
    assert db.budget.used_by_accounts(INSTANCE, now=NOW) == {"acme": 3, "globex": 5}
    db.budget.refund(INSTANCE, 2, now=NOW, account="globex")
    assert db.budget.used_by_accounts(INSTANCE, now=NOW) == {"acme": 3, "globex": 3}
    assert db.budget.used(INSTANCE, now=NOW) == 7
    # The next Marketo day starts afresh.
    tomorrow = datetime(2025, 6, 3, 15, 0, tzinfo=timezone.utc)
    assert db.budget.spend(INSTANCE, now=tomorrow, limit=100, account="acme", account_limit=3) == 1


def test_the_instance_limit_still_applies_under_a_share(db: StateDB) -> None:
    db.budget.spend(INSTANCE, 9, now=NOW, limit=10)
    with pytest.raises(BudgetExhausted) as caught:
        db.budget.spend(INSTANCE, 2, now=NOW, limit=10, account="acme", account_limit=50)
    assert not isinstance(caught.value, ShareExhausted)
    assert db.budget.used_by_accounts(INSTANCE, now=NOW) == {}


def test_a_share_is_never_overshot_by_concurrent_spenders(db: StateDB) -> None:
    spent: list[int] = []
    refused: list[int] = []

    def worker() -> None:
        for _ in range(20):
            try:
                db.budget.spend(INSTANCE, now=NOW, account="acme", account_limit=50)
                spent.append(1)
            except ShareExhausted:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(spent), len(refused)) == (50, 30)
    assert db.budget.used_by_accounts(INSTANCE, now=NOW) == {"acme": 50}
    assert db.budget.used(INSTANCE, now=NOW) == 50

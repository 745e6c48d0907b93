"""The load's ownership gate remembers, for one load, the keys its account owns -- and only those."""

from __future__ import annotations

from sqlalchemy import event

from airflow_provider_fbmkto.pipeline.ownership import OwnershipGate
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.state.ledger import LedgerRow
from airflow_provider_fbmkto.sync.ownership import LEAD, SharingPolicy

INSTANCE = "123-abc-456.mktorest.com"


def _rows(db: StateDB, account: str, emails: list[str]) -> list[LedgerRow]:
    entries = [(f"activity:{account}:{e}", "activity", {"leadEmail": e}, e) for e in emails]
    db.ledger.plan(account, "r1", entries)
    return db.ledger.claim(account, "activity", limit=len(emails), run_id="r1")


def _split(gate: OwnershipGate, rows: list[LedgerRow]) -> tuple[list[str], list[str]]:
    out = gate.split(LEAD, rows, lambda r: str(r.payload["leadEmail"]), "activity on lead")
    return [str(r.payload["leadEmail"]) for r in out.own], [o.key for o in out.held]


def _owner_reads(db: StateDB) -> list[str]:
    seen: list[str] = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: seen.append(sql) if "fbmkto_owners" in sql else None,
    )
    return seen


def test_a_key_found_owned_is_not_looked_up_again_in_the_same_load(state_db: StateDB) -> None:
    rows = _rows(state_db, "acme", ["ann@x.io", "bob@x.io"])
    gate = OwnershipGate(state_db, INSTANCE, "acme", "r1", SharingPolicy())
    assert _split(gate, rows) == (["ann@x.io", "bob@x.io"], [])
    statements = _owner_reads(state_db)
    # An operator releases Ann while the load runs: the load goes on as her owner; the next load claims anew.
    state_db.owners.release("acme", keys=["ann@x.io"])
    statements.clear()
    assert _split(gate, rows) == (["ann@x.io", "bob@x.io"], [])
    assert statements == []  # neither e-mail was looked up again
    assert state_db.owners.owners(INSTANCE, LEAD, ["ann@x.io"]) == {}
    next_load = OwnershipGate(state_db, INSTANCE, "acme", "r2", SharingPolicy())
    assert _split(next_load, rows[:1]) == (["ann@x.io"], [])
    assert state_db.owners.owners(INSTANCE, LEAD, ["ann@x.io"]) == {"ann@x.io": "acme"}


def test_a_key_another_account_owns_is_looked_up_each_time(state_db: StateDB) -> None:
    theirs = OwnershipGate(state_db, INSTANCE, "globex", "g1", SharingPolicy())
    _split(theirs, _rows(state_db, "globex", ["cat@x.io"]))
    rows = _rows(state_db, "acme", ["cat@x.io", "dan@x.io"])
    gate = OwnershipGate(state_db, INSTANCE, "acme", "r1", SharingPolicy())
    own, held = _split(gate, rows)
    assert own == ["dan@x.io"]
    assert held == ["activity:acme:cat@x.io"]
    # globex gives Cat up: the same load of acme now claims and writes her.
    state_db.owners.release("globex", keys=["cat@x.io"])
    assert _split(gate, rows) == (["cat@x.io", "dan@x.io"], [])
    assert state_db.owners.owners(INSTANCE, LEAD, ["cat@x.io"]) == {"cat@x.io": "acme"}

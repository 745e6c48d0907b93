"""The owners store: one owner per (instance, kind, key), even for claims racing in several processes."""

from __future__ import annotations

import multiprocessing

import owners_workers  # tests/state/owners_workers.py, importable by spawned children
import pytest

from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.sync.ownership import SharingPolicy

SPAWN = multiprocessing.get_context("spawn")
MKTO = "mkto.example:443"


def test_the_first_claim_owns_a_key_and_later_claims_learn_the_owner(db: StateDB) -> None:
    assert db.owners.claim(MKTO, "lead", "acme", ["Ann@BigCo.io", "bob@bigco.io"], run_id="r1") == {
        "ann@bigco.io": "acme",
        "bob@bigco.io": "acme",
    }
    assert db.owners.claim(MKTO, "lead", "globex", ["ann@bigco.io", "cy@zeta.io"], run_id="r2") == {
        "ann@bigco.io": "acme",
        "cy@zeta.io": "globex",
    }
    # kinds and instances are separate namespaces; company keys keep their case
    assert db.owners.claim(MKTO, "company", "globex", ["bigco.io"], run_id="r2") == {"bigco.io": "globex"}
    assert db.owners.claim("other:443", "lead", "globex", ["ann@bigco.io"], run_id="r2") == {"ann@bigco.io": "globex"}
    assert db.owners.owners(MKTO, "lead", ["ann@bigco.io", "nobody@x.io"]) == {"ann@bigco.io": "acme"}
    listed = [(o.kind, o.key, o.account) for o in db.owners.owned("acme")]
    assert listed == [("lead", "ann@bigco.io", "acme"), ("lead", "bob@bigco.io", "acme")]


def test_ownership_stays_with_the_first_writer_until_released(db: StateDB) -> None:
    db.owners.claim(MKTO, "lead", "acme", ["ann@bigco.io", "bob@bigco.io"], run_id="r1")
    db.owners.claim(MKTO, "lead", "acme", ["ann@bigco.io"], run_id="r9")  # claiming again changes nothing
    assert db.owners.claim(MKTO, "lead", "globex", ["ann@bigco.io"], run_id="r2") == {"ann@bigco.io": "acme"}
    assert db.owners.release("acme", keys=["Ann@BigCo.io"]) == 1
    assert db.owners.claim(MKTO, "lead", "globex", ["ann@bigco.io"], run_id="r3") == {"ann@bigco.io": "globex"}
    assert db.owners.release("acme") == 1  # bob
    assert db.owners.owned("acme") == []
    with pytest.raises(ValueError, match="unknown owned kind"):
        db.owners.claim(MKTO, "list", "acme", ["x"], run_id="r1")


def test_sharing_policies_are_declared_per_instance_and_replaced(db: StateDB) -> None:
    assert db.owners.policies(MKTO, ["acme"]) == {}
    db.owners.declare(MKTO, "acme", SharingPolicy(leads=True, companies=frozenset({"bigco", "zeta"})))
    db.owners.declare(MKTO, "globex", SharingPolicy())
    assert db.owners.policies(MKTO, ["acme", "globex", "initech"]) == {
        "acme": SharingPolicy(True, frozenset({"bigco", "zeta"})),
        "globex": SharingPolicy(),
    }
    db.owners.declare(MKTO, "acme", SharingPolicy(companies=frozenset({"bigco"})))
    assert db.owners.policies(MKTO, ["acme"]) == {"acme": SharingPolicy(False, frozenset({"bigco"}))}
    assert db.owners.policies("other:443", ["acme"]) == {}


def test_claims_racing_in_six_processes_agree_on_one_owner_per_email(db: StateDB, db_url: str) -> None:
    db.create_all()
    emails = [f"p{i}@shared.io" for i in range(60)]
    accounts = [f"acct{i}" for i in range(6)]
    with SPAWN.Pool(len(accounts)) as pool:
        # each process claims the e-mails in its own order, so every process wins some of the races
        seen = pool.starmap(
            owners_workers.claim_all,
            [(db_url, a, emails[i * 10 :] + emails[: i * 10]) for i, a in enumerate(accounts)],
        )
    final = db.owners.owners(MKTO, "lead", emails)
    assert sorted(final) == sorted(emails)
    for answers in seen:
        assert answers == final  # every claimer was told the one owner that is stored
    assert set(final.values()) <= set(accounts)

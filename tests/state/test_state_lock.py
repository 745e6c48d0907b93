from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
import state_workers  # tests/state/state_workers.py, importable by spawned children

from airflow_provider_fbmkto.exceptions import FbmktoError
from airflow_provider_fbmkto.state import StateDB, TokenLockTimeout

SPAWN = multiprocessing.get_context("spawn")


def _assert_no_overlap(journal: Path, expected_sections: int) -> None:
    lines = journal.read_text().splitlines()
    assert len(lines) == 2 * expected_sections
    inside: str | None = None
    for line in lines:
        event, pid = line.split()
        if event == "enter":
            assert inside is None, f"{pid} entered while {inside} held the lock"
            inside = pid
        else:
            assert inside == pid
            inside = None


def test_refresh_lock_excludes_8_processes(db: StateDB, db_url: str, key: str, tmp_path: Path) -> None:
    db.create_all()
    counter, journal = tmp_path / "counter", tmp_path / "journal"
    counter.write_text("0")
    rounds = 3
    procs = [
        SPAWN.Process(
            target=state_workers.hold_lock_and_count,
            args=(db_url, key, "freshbooks_acme", str(counter), str(journal), rounds),
        )
        for _ in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    assert [p.exitcode for p in procs] == [0] * 8
    assert int(counter.read_text()) == 8 * rounds
    _assert_no_overlap(journal, 8 * rounds)


def test_refresh_lock_excludes_threads(db: StateDB) -> None:
    state = {"value": 0, "inside": 0, "max_inside": 0}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                with db.tokens.refresh_lock("freshbooks_acme", timeout=30):
                    state["inside"] += 1
                    state["max_inside"] = max(state["max_inside"], state["inside"])
                    value = state["value"]
                    time.sleep(0.002)
                    state["value"] = value + 1
                    state["inside"] -= 1
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert state["value"] == 40
    assert state["max_inside"] == 1


def test_the_database_lease_excludes_other_instances(db: StateDB, db_url: str, key: str) -> None:
    """Another StateDB (like another process) cannot take the lease row while it is held; other conn ids can."""
    other = StateDB(db_url, fernet_key=key)
    with db.tokens.refresh_lock("freshbooks_acme"):
        assert other.tokens._try_acquire("freshbooks_acme", "intruder", lease_seconds=60) is False
        assert other.tokens._try_acquire("freshbooks_other", "someone", lease_seconds=60) is True
    assert other.tokens._try_acquire("freshbooks_acme", "next", lease_seconds=60) is True


def test_timeout_raises_a_clear_fbmkto_error(db: StateDB) -> None:
    db.tokens._try_acquire("freshbooks_acme", "someone-else", lease_seconds=30)
    started = time.monotonic()
    with pytest.raises(TokenLockTimeout) as err, db.tokens.refresh_lock("freshbooks_acme", timeout=0.3):
        pytest.fail("acquired a lock held by someone else")
    assert time.monotonic() - started >= 0.3
    assert isinstance(err.value, FbmktoError)
    assert "freshbooks_acme" in str(err.value)
    assert "0.3s" in str(err.value)


def test_lease_of_a_crashed_holder_expires(db: StateDB, db_url: str, key: str) -> None:
    db.create_all()
    crashed = SPAWN.Process(target=state_workers.crash_while_holding, args=(db_url, key, "freshbooks_acme", 2.5))
    crashed.start()
    crashed.join(60)
    assert crashed.exitcode == 0
    # The dead process never released: the lock is still taken ...
    with pytest.raises(TokenLockTimeout), db.tokens.refresh_lock("freshbooks_acme", timeout=0.2):
        pass
    # ... until its lease runs out.
    started = time.monotonic()
    with db.tokens.refresh_lock("freshbooks_acme", timeout=10):
        waited = time.monotonic() - started
    assert waited < 10
    print(f"acquired after the crashed holder's lease expired, waited {waited:.2f}s")


def test_release_lets_the_next_holder_in_immediately(db: StateDB) -> None:
    with db.tokens.refresh_lock("freshbooks_acme"):
        pass
    started = time.monotonic()
    with db.tokens.refresh_lock("freshbooks_acme", timeout=5):
        pass
    assert time.monotonic() - started < 1.0

"""``fbmkto ledger status|show-failed|replay`` over a prepared state DB, and ``fbmkto check`` against the emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.state import LedgerStatus, RowOutcome, StateDB
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

STATUSES = ("pending", "in_flight", "written", "skipped", "failed", "withdrawn")
DRAFT_REASON = "1013 Activity type 100002 ('fbPaymentReceived') is a draft; approve it first"
HTTP_REASON = "Marketo POST /rest/v1/leads.json: HTTP 503 after retries"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = fbmkto(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def table(output: str) -> dict[str, dict[str, int]]:
    """The status table printed by ``ledger status``: kind -> status -> count."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["kind"])
    assert lines[header].split() == ["kind", *STATUSES]
    rows: dict[str, dict[str, int]] = {}
    for line in lines[header + 1 :]:
        cells = line.split()
        if len(cells) != 1 + len(STATUSES) or not all(c.isdigit() for c in cells[1:]):
            break
        rows[cells[0]] = dict(zip(STATUSES, map(int, cells[1:]), strict=True))
    return rows


@pytest.fixture
def db(airflow_env: Path) -> StateDB:
    """Ledger of account ``acme``: activities written/skipped/failed/in flight, leads written/pending/failed."""
    db = StateDB.from_airflow()
    rows = [
        ("invoice_sent:acme:1", "activity"),
        ("invoice_sent:acme:2", "activity"),
        ("payment_received:acme:10", "activity"),
        ("payment_received:acme:11", "activity"),
        ("payment_received:acme:12", "activity"),
        ("lead:acme:a@bigco.io", "lead"),
        ("lead:acme:b@bigco.io", "lead"),
        ("lead:acme:c@bigco.io", "lead"),
    ]
    db.ledger.plan("acme", "run-1", [(key, kind, {"key": key}, f"h-{key}") for key, kind in rows])
    db.ledger.plan("other", "run-9", [("payment_received:other:5", "activity", {}, "h")])
    for account, kind in (("acme", "activity"), ("acme", "lead"), ("other", "activity")):
        db.ledger.claim(account, kind, limit=100, run_id="run-1")
    db.ledger.mark(
        [
            RowOutcome("invoice_sent:acme:1", LedgerStatus.WRITTEN, 501),
            RowOutcome("invoice_sent:acme:2", LedgerStatus.WRITTEN, 502),
            RowOutcome("payment_received:acme:10", LedgerStatus.SKIPPED, None, DRAFT_REASON),
            RowOutcome("payment_received:acme:11", LedgerStatus.SKIPPED, None, DRAFT_REASON),
            # payment_received:acme:12 stays in flight (a crashed send)
            RowOutcome("lead:acme:a@bigco.io", LedgerStatus.WRITTEN, 7),
            RowOutcome("lead:acme:b@bigco.io", LedgerStatus.PENDING),
            RowOutcome("lead:acme:c@bigco.io", LedgerStatus.FAILED, None, HTTP_REASON),
            RowOutcome("payment_received:other:5", LedgerStatus.SKIPPED, None, "1004 Lead not found"),
        ]
    )
    start = datetime(2025, 3, 1, 5, 0, tzinfo=timezone.utc)
    end = datetime(2025, 3, 2, 5, 0, tzinfo=timezone.utc)
    db.runs.start("acme", "scheduled__2025-03-01", window_start=start, window_end=end)
    db.runs.finish("acme", "scheduled__2025-03-01", status="failed")
    return db


def test_status_shows_counts_per_kind_and_status_and_recent_runs(
    db: StateDB, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "ledger", "status", "--account", "acme")
    assert code == 0
    assert table(out) == {
        "activity": {"pending": 0, "in_flight": 1, "written": 2, "skipped": 2, "failed": 0, "withdrawn": 0},
        "lead": {"pending": 1, "in_flight": 0, "written": 1, "skipped": 0, "failed": 1, "withdrawn": 0},
    }
    assert "run scheduled__2025-03-01: failed (window 2025-03-01 05:00 .. 2025-03-02 05:00)" in out


def test_status_of_an_account_without_rows_says_so(db: StateDB, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "ledger", "status", "--account", "nobody")
    assert code == 0
    assert "'nobody'" in out
    assert "empty" in out
    assert table_free(out)


def table_free(output: str) -> bool:
    return not any(line.split()[:1] == ["kind"] for line in output.splitlines() if line.strip())


def test_show_failed_lists_each_row_with_its_reason(db: StateDB, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "ledger", "show-failed", "--account", "acme")
    assert code == 0
    for key in ("payment_received:acme:10", "payment_received:acme:11", "lead:acme:c@bigco.io"):
        assert key in out
    assert out.count(DRAFT_REASON) == 2
    assert out.count(HTTP_REASON) == 1
    # Not the written, pending or in-flight ones, nor another account's.
    for key in ("invoice_sent:acme:1", "lead:acme:b@bigco.io", "payment_received:acme:12", "other:5"):
        assert key not in out
    assert "fbmkto ledger replay --account acme" in out  # what to do next


def test_show_failed_filters_by_kind(db: StateDB, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "ledger", "show-failed", "--account", "acme", "--kind", "lead")
    assert code == 0
    assert "lead:acme:c@bigco.io" in out
    assert "payment_received" not in out

    code, out = run(capsys, "ledger", "show-failed", "--account", "acme", "--kind", "company")
    assert code == 0
    assert "no skipped or failed rows" in out


def test_replay_moves_skipped_and_failed_back_to_pending(db: StateDB, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "ledger", "replay", "--account", "acme")
    assert code == 0
    assert out.startswith("3 rows of 'acme' are pending again")
    assert "airflow dags trigger fbmkto_sync__acme" in out  # how to send them now

    def status(key: str) -> LedgerStatus:
        row = db.ledger.get(key)
        assert row is not None
        return row.status

    for key in ("payment_received:acme:10", "payment_received:acme:11", "lead:acme:c@bigco.io"):
        assert status(key) is LedgerStatus.PENDING
    assert status("invoice_sent:acme:1") is LedgerStatus.WRITTEN  # never resent
    assert status("payment_received:acme:12") is LedgerStatus.IN_FLIGHT  # in doubt: left to resolution
    assert status("payment_received:other:5") is LedgerStatus.SKIPPED  # another account

    code, out = run(capsys, "ledger", "show-failed", "--account", "acme")
    assert "no skipped or failed rows" in out
    code, out = run(capsys, "ledger", "status", "--account", "acme")
    assert table(out)["activity"] == {
        "pending": 2, "in_flight": 1, "written": 2, "skipped": 0, "failed": 0, "withdrawn": 0,
    }  # fmt: skip


def test_replay_of_one_kind_leaves_the_others(db: StateDB, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "ledger", "replay", "--account", "acme", "--kind", "lead")
    assert code == 0
    assert out.startswith("1 rows of 'acme' are pending again")
    row = db.ledger.get("payment_received:acme:10")
    assert row is not None
    assert row.status is LedgerStatus.SKIPPED


# -- fbmkto check ------------------------------------------------------------------------------------

CONFIG = """
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  start_date: "2025-01-01"
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
  - name: globex
    freshbooks_conn_id: freshbooks_globex
"""


@pytest.fixture
def emulators(
    airflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FreshBooksEmulator, MarketoEmulator]]:
    with FreshBooksEmulator(seed="demo") as fb, MarketoEmulator(window_seconds=1.0) as mk:
        for conn_id in ("freshbooks_acme", "freshbooks_globex"):
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", fb.conn_json())
            assert fbmkto(["authorize", "--conn-id", conn_id, "--code", fb.issue_code()]) == 0
        monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", mk.conn_json())
        (airflow_env / "accounts.yaml").write_text(CONFIG)
        assert fbmkto(["setup-marketo", "--config", str(airflow_env / "accounts.yaml")]) == 0
        yield fb, mk


def test_check_prints_ok_for_every_connection(
    emulators: tuple[FreshBooksEmulator, MarketoEmulator], airflow_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code, out = run(capsys, "check", "--config", str(airflow_env / "accounts.yaml"))
    assert code == 0, out
    lines = out.splitlines()
    assert any(line.startswith("state DB sqlite") and line.endswith(": ok") for line in lines)
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == [
        "[ok] acme",
        "[ok] acme",
        "[ok] acme",  # the Marketo preflight of acme
        "[ok] globex",  # the shared Marketo connection is tested once
        "[ok] globex",
    ]
    assert sum("Marketo preflight: activity types, fields and segments in place" in line for line in lines) == 2
    assert any("freshbooks freshbooks_acme" in line for line in lines)
    assert any("freshbooks freshbooks_globex" in line for line in lines)
    assert sum("marketo marketo_default" in line for line in lines) == 1


def test_check_with_a_wrong_marketo_secret_fails_naming_the_connection(
    emulators: tuple[FreshBooksEmulator, MarketoEmulator],
    airflow_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fb, mk = emulators
    wrong_secret = "not-the-secret-8Zq4x"
    conn = json.loads(mk.conn_json())
    conn["password"] = wrong_secret
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", json.dumps(conn))
    capsys.readouterr()

    code, out = run(capsys, "check", "--config", str(airflow_env / "accounts.yaml"))

    assert code == 1
    failing = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert len(failing) == 1
    assert "marketo_default" in failing[0]
    assert sum(line.startswith("[--]") and "preflight skipped" in line for line in out.splitlines()) == 2
    assert sum(line.startswith("[ok]") for line in out.splitlines()) == 2  # FreshBooks is fine
    tokens = [StateDB.from_airflow().tokens.load(c) for c in ("freshbooks_acme", "freshbooks_globex")]
    secrets = [wrong_secret, mk.client_secret, fb.client_secret]
    secrets += [t.access_token for t in tokens if t] + [t.refresh_token for t in tokens if t]
    for secret in secrets:
        assert secret not in out


def test_check_without_a_config_file_names_the_fix(airflow_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "check", "--config", str(airflow_env / "missing.yaml"))
    assert code == 1
    assert "missing.yaml" in out
    assert "FBMKTO_CONFIG" in out

"""The DAG files as Airflow's own DagBag parses them: one DAG per account, config problems as import errors."""

from __future__ import annotations

import itertools
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import CronDataIntervalTimetable
from airflow.serialization.encoders import encode_timetable

DAGS = Path(__file__).resolve().parents[2] / "dags"
SYNC_FILE = "freshbooks_to_marketo.py"
CHECK_FILE = "fbmkto_config_check.py"

TWO_ACCOUNTS = """
defaults:
  marketo_conn_id: marketo_default
accounts:
  - name: alpha
    freshbooks_conn_id: freshbooks_alpha
    schedule: "30 6 * * 1-5"
    timezone: Europe/Berlin
    start_date: "2025-01-01"
    retries: 5
    pool: marketo_pool
  - name: beta
    freshbooks_conn_id: freshbooks_beta
    schedule: "@daily"
    start_date: "2025-02-01"
"""

ONE_BROKEN = """
accounts:
  - name: good
    freshbooks_conn_id: freshbooks_good
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
  - name: broken
    freshbooks_conn_id: freshbooks_broken
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-13-45"
"""

SAME_COMPANY = """
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  start_date: "2025-01-01"
accounts:
  - name: east
    freshbooks_conn_id: freshbooks_east
    matching: {rules: [{domain: bigco.io, company: BigCo Holdings}]}
  - name: west
    freshbooks_conn_id: freshbooks_west
    matching: {rules: [{email: cfo@bigco.example, company: "bigco  holdings"}]}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$FBMKTO_CONFIG`` pointing at a file the test writes."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    path = tmp_path / "accounts.yaml"
    monkeypatch.setenv("FBMKTO_CONFIG", str(path))
    return path


def parse(folder: Path = DAGS) -> DagBag:
    return DagBag(dag_folder=folder, safe_mode=True)


def error_of(bag: DagBag, file_name: str) -> str | None:
    found = [text for path, text in bag.import_errors.items() if Path(path).name == file_name]
    return found[0] if found else None


def test_one_dag_per_account_with_the_account_settings(config: Path) -> None:
    config.write_text(TWO_ACCOUNTS)
    bag = parse()

    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["fbmkto_sync__alpha", "fbmkto_sync__beta"]
    alpha, beta = bag.dags["fbmkto_sync__alpha"], bag.dags["fbmkto_sync__beta"]
    assert Path(alpha.fileloc).name == SYNC_FILE

    assert isinstance(alpha.timetable, CronDataIntervalTimetable)
    # What the scheduler gets: the serialized timetable (airflow.sdk's timetable is a definition only).
    assert encode_timetable(alpha.timetable)["__var"] == {"expression": "30 6 * * 1-5", "timezone": "Europe/Berlin"}
    assert isinstance(beta.timetable, CronDataIntervalTimetable)
    assert encode_timetable(beta.timetable)["__var"] == {"expression": "0 0 * * *", "timezone": "America/New_York"}
    # The first interval starts at midnight of start_date in the account's zone.
    assert alpha.start_date == datetime(2024, 12, 31, 23, 0, tzinfo=timezone.utc)
    assert beta.start_date == datetime(2025, 2, 1, 5, 0, tzinfo=timezone.utc)

    for dag in (alpha, beta):
        assert dag.max_active_runs == 1
        assert dag.catchup is False
        assert set(dag.params) == {"window_start", "window_end", "replay_failed", "dry_run", "full_refresh"}
        assert dag.params["dry_run"] is False
        assert dag.params["window_start"] is None


def test_tasks_are_chained_extract_map_load_reconcile_report(config: Path) -> None:
    config.write_text(TWO_ACCOUNTS)
    dag = parse().dags["fbmkto_sync__beta"]

    chain = ["extract", "map", "load", "reconcile", "report"]
    assert sorted(dag.task_ids) == sorted(chain)
    for upstream, downstream in itertools.pairwise(chain):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.get_task("report").downstream_task_ids == set()
    assert dag.get_task("extract").upstream_task_ids == set()
    assert dag.get_task("report").trigger_rule == "all_done"  # reports failed runs too


def test_retries_from_config_with_exponential_backoff(config: Path) -> None:
    config.write_text(TWO_ACCOUNTS)
    bag = parse()
    for dag_id, retries in (("fbmkto_sync__alpha", 5), ("fbmkto_sync__beta", 3)):
        for task in bag.dags[dag_id].tasks:
            assert task.retries == retries
            # Airflow 3.3 multiplies the delay by this per try; 1 (or True) would keep it constant.
            assert float(task.retry_exponential_backoff) >= 2.0
            assert task.max_retry_delay == timedelta(minutes=30)


def test_pool_on_the_marketo_tasks_when_configured(config: Path) -> None:
    config.write_text(TWO_ACCOUNTS)
    bag = parse()
    alpha = {t.task_id: t.pool for t in bag.dags["fbmkto_sync__alpha"].tasks}
    assert alpha == {
        "extract": "default_pool",
        "map": "default_pool",
        "load": "marketo_pool",
        "reconcile": "marketo_pool",
        "report": "default_pool",
    }
    assert {t.pool for t in bag.dags["fbmkto_sync__beta"].tasks} == {"default_pool"}
    # load sends several batches at once: it holds as many slots as calls it may have in flight
    slots = {t.task_id: t.pool_slots for t in bag.dags["fbmkto_sync__alpha"].tasks}
    assert slots["load"] == 4
    assert slots["reconcile"] == 1


def test_a_broken_account_does_not_take_the_good_one_down(config: Path) -> None:
    config.write_text(ONE_BROKEN)
    bag = parse()

    assert bag.dag_ids == ["fbmkto_sync__good"]
    assert error_of(bag, SYNC_FILE) is None
    error = error_of(bag, CHECK_FILE)
    assert error is not None
    assert str(config) in error
    assert "'broken'" in error
    assert "start_date" in error
    assert "'good'" not in error


def test_two_accounts_writing_the_same_company_are_refused(config: Path) -> None:
    config.write_text(SAME_COMPANY)
    bag = parse()

    assert bag.dag_ids == ["fbmkto_sync__east"]  # the later account gets the error
    error = error_of(bag, CHECK_FILE)
    assert error is not None
    assert "'west'" in error
    assert "east" in error
    assert "fbmkto:bigco-holdings" in error
    assert "shared: true" in error  # how to allow it, if intended


def test_an_unreadable_file_fails_both_dag_files(config: Path) -> None:
    config.write_text("accounts:\n  - name: x\n   bad indent: [\n")
    bag = parse()

    assert bag.dag_ids == []
    for name in (SYNC_FILE, CHECK_FILE):
        error = error_of(bag, name)
        assert error is not None
        assert str(config) in error


def test_no_config_file_means_no_dags_and_no_errors(config: Path) -> None:
    assert not config.exists()
    bag = parse()
    assert bag.dag_ids == []
    assert bag.import_errors == {}


def test_config_beside_the_dag_file_is_found_without_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FBMKTO_CONFIG", raising=False)
    folder = tmp_path / "dags"
    folder.mkdir()
    for name in (SYNC_FILE, CHECK_FILE):
        shutil.copy(DAGS / name, folder / name)

    empty = parse(folder)
    assert (empty.dag_ids, empty.import_errors) == ([], {})

    (folder / "fbmkto_accounts.yaml").write_text(ONE_BROKEN)
    bag = parse(folder)
    assert bag.dag_ids == ["fbmkto_sync__good"]
    error = error_of(bag, CHECK_FILE)
    assert error is not None
    assert str(folder / "fbmkto_accounts.yaml") in error

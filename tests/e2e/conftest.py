"""End-to-end: real DAG runs (``airflow dags test`` and the scheduler) against both emulators.

``World`` is one Airflow home (SQLite metadata DB migrated once per module), a fresh state DB per test,
the emulators, the accounts config and the connections; ``world.run(day)`` runs the account's DAG for the
daily interval ending at ``day`` through Airflow, as ``airflow dags test`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.testing import FreshBooksEmulator, MarketoEmulator

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PAID, OVERDUE = 1001, 1002
TODAY = datetime.now(timezone.utc).date()

BASE_CONFIG = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"
    timezone: UTC
    start_date: "2025-01-01"
    retries: 0          # a failed task fails the run at once; the tests rerun it as Airflow's retry would
    matching:
      rules:
        - {{domain: bigco.io, company: BigCo Holdings}}
    segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
"""


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return home


@dataclass
class World:
    home: Path
    fb: FreshBooksEmulator
    mkto: MarketoEmulator
    config: Path
    env: dict[str, str]
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def cli(self, *args: str) -> int:
        from airflow_provider_fbmkto.cli import main

        return main(list(args))

    def run(
        self, day: date, conf: dict[str, Any] | None = None, account: str = "acme"
    ) -> subprocess.CompletedProcess[str]:
        """``airflow dags test fbmkto_sync__<account> <day>``: the daily interval [day - 1, day)."""
        args = [sys.executable, "-m", "airflow", "dags", "test", f"fbmkto_sync__{account}", day.isoformat()]
        if conf:
            args += ["-c", json.dumps(conf)]
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        self.runs.append(proc)
        return proc

    def ok(self, day: date, conf: dict[str, Any] | None = None, account: str = "acme") -> str:
        proc = self.run(day, conf, account)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        assert "state=success" in out, out[-6000:]
        return out

    # -- Marketo views ------------------------------------------------------------------------------------
    def lead(self, email: str) -> dict[str, Any]:
        (lead,) = [lead for lead in self.mkto.leads() if lead["email"] == email]
        return lead

    def activity_keys(self) -> list[tuple[int, int, str, str]]:
        return [
            (a["leadId"], a["activityTypeId"], str(a.get("primaryAttributeValue")), a["activityDate"])
            for a in self.mkto.activities()
        ]

    def duplicates(self) -> int:
        return sum(n - 1 for n in Counter(self.activity_keys()).values() if n > 1)

    def type_names(self) -> dict[int, str]:
        return {t["id"]: t["apiName"] for t in self.mkto.activity_types()}

    def timeline(self, email: str) -> list[tuple[str, str, str]]:
        names = self.type_names()
        lead_id = self.lead(email)["id"]
        return sorted(
            (a["activityDate"], names[a["activityTypeId"]], str(a.get("primaryAttributeValue")))
            for a in self.mkto.activities(lead_id)
        )


def make_world(
    home: Path, tmp_path: Path, config: str | None = None, *, marketo: dict[str, Any] | None = None
) -> Iterator[World]:
    key = Fernet.generate_key().decode()
    state = tmp_path / "state.db"
    cfg = tmp_path / "fbmkto_accounts.yaml"
    cfg.write_text((config or BASE_CONFIG).format(paid=PAID, overdue=OVERDUE))
    with (
        FreshBooksEmulator(account_id="ACME01") as fb,
        MarketoEmulator(window_seconds=2.0, lists={PAID: "Paid", OVERDUE: "Overdue"}, **(marketo or {})) as mkto,
    ):
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__FERNET_KEY": key,
            "FBMKTO_FERNET_KEY": key,
            "FBMKTO_CONFIG": str(cfg),
            "AIRFLOW_CONN_FBMKTO_STATE": json.dumps({"conn_type": "sqlite", "host": str(state)}),
            "AIRFLOW_CONN_FRESHBOOKS_ACME": fb.conn_json(),
            "AIRFLOW_CONN_FRESHBOOKS_GLOBEX": fb.conn_json(),
            "AIRFLOW_CONN_MARKETO_DEFAULT": mkto.conn_json(),
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            world = World(home, fb, mkto, cfg, {**os.environ, **env})
            yield world
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def world(airflow_home: Path, tmp_path: Path) -> Iterator[World]:
    """One account (acme) with rules and lists, Marketo provisioned, FreshBooks authorized; no records yet."""
    for w in make_world(airflow_home, tmp_path):
        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        yield w


def day(n: int) -> date:
    """``TODAY - n`` days: test data lives in the recent past, like a live account's."""
    return TODAY - timedelta(days=n)

"""Fixtures of the operator-experience tests: a seeded state DB, an accounts file, a fake Airflow REST API.

``seeded`` builds the ledger through the state DB's own API (plan → claim → mark), so the numbers the tests
expect are the ones written here, not ones computed by the code under test.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import JSONResponse

from airflow_provider_fbmkto.state import RowOutcome, StateDB
from airflow_provider_fbmkto.state.models import LedgerEntry

CONFIG = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
  - name: globex
    freshbooks_conn_id: freshbooks_globex
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
"""
_TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
#: The window of acme's last (successful) run: yesterday.
WINDOW = (_TODAY - timedelta(days=1), _TODAY)
MARKETO_CONN = {
    "conn_type": "marketo",
    "host": "https://123-abc-456.mktorest.com",
    "login": "client-id",
    "password": "client-secret",
    "extra": {"daily_budget": 1000, "budget_reserve": 100},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives headless Chromium against a real Airflow api-server")


def cell(page: str, testid: str) -> str:
    """Text of the element with ``data-testid=testid`` (first one); fails when absent."""
    found = re.search(rf'data-testid="{re.escape(testid)}"[^>]*>([^<]*)<', page)
    assert found, f"no element {testid!r} on the page"
    return found.group(1)


def add_rows(db: StateDB, account: str, run_id: str, rows: list[tuple[str, str, str, str | None]]) -> None:
    """Ledger rows ``(key, kind, final status, reason)`` planned, claimed and marked by ``run_id``."""
    db.ledger.plan(account, run_id, [(key, kind, {"k": key}, f"h-{key}") for key, kind, _s, _r in rows])
    for kind in {kind for _k, kind, _s, _r in rows}:
        db.ledger.claim(account, kind, limit=1000, run_id=run_id)
    db.ledger.mark(RowOutcome(key, status, error=reason) for key, _kind, status, reason in rows)


@dataclass
class Seeded:
    db: StateDB
    config: Path
    now: datetime
    fernet: str
    instance_calls: int = 37


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """acme: one finished run with known counts, one old row, one row written 3 days ago; globex: nothing."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", key)
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", json.dumps(MARKETO_CONN))
    config = tmp_path / "fbmkto_accounts.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("FBMKTO_CONFIG", str(config))
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}", fernet_key=key)
    now = datetime.now(timezone.utc)

    add_rows(db, "acme", "old_run", [("company:acme:oldco", "company", "written", None)])
    add_rows(
        db,
        "acme",
        "scheduled__1",
        [
            ("activity:acme:1", "activity", "written", None),
            ("activity:acme:2", "activity", "written", None),
            ("activity:acme:3", "activity", "written", None),
            ("activity:acme:4", "activity", "skipped", "1003: activity type fbInvoiceSent is not approved"),
            ("lead:acme:ann@bigco.io", "lead", "written", None),
            ("lead:acme:bob@bigco.io", "lead", "written", None),
            ("company:acme:bigco", "company", "failed", "HTTP 503 from Marketo; retried 5 times"),
        ],
    )
    with db.write_tx() as conn:  # an old row (outside the 7 days) and a write 3 days ago (for the chart)
        conn.execute(
            update(LedgerEntry)
            .where(LedgerEntry.key == "company:acme:oldco")
            .values(updated_at=now - timedelta(days=10), written_at=now - timedelta(days=10))
        )
        conn.execute(
            update(LedgerEntry)
            .where(LedgerEntry.key == "lead:acme:bob@bigco.io")
            .values(written_at=now - timedelta(days=3))
        )
    db.runs.start("acme", "old_run", window_start=now - timedelta(days=12), window_end=now - timedelta(days=11))
    db.runs.finish("acme", "old_run", status="success", summary={"this_run": {"company": {"written": 1}}})
    db.runs.start("acme", "scheduled__1", window_start=WINDOW[0], window_end=WINDOW[1])
    db.runs.finish(
        "acme",
        "scheduled__1",
        status="success",
        summary={
            "this_run": {
                "activity": {"written": 3, "skipped": 1},
                "lead": {"written": 2},
                "company": {"failed": 1},
            }
        },
    )
    seeded = Seeded(db, config, now, key)
    db.budget.spend("123-abc-456.mktorest.com", seeded.instance_calls)
    return seeded


# -------------------------------------------------------------------------------------- fake Airflow API


@dataclass
class FakeAirflowApi:
    """A stand-in for Airflow's ``POST /api/v2/dags/{dag_id}/dagRuns`` that records what it was sent."""

    answer_status: int = 200
    answer: dict[str, Any] = field(default_factory=lambda: {"dag_run_id": "manual__2025-03-02", "state": "queued"})
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> Any:
        from fastapi import FastAPI

        app = FastAPI()

        @app.post("/api/v2/dags/{dag_id}/dagRuns")
        async def trigger(dag_id: str, request: Request) -> JSONResponse:
            with self.lock:
                self.requests.append(
                    {
                        "path": request.url.path,
                        "authorization": request.headers.get("authorization"),
                        "content_type": request.headers.get("content-type"),
                        "json": await request.json(),
                    }
                )
            return JSONResponse(self.answer, status_code=self.answer_status)

        return app


@pytest.fixture
def fake_api() -> Iterator[FakeAirflowApi]:
    from airflow_provider_fbmkto.testing.server import ThreadedServer

    api = FakeAirflowApi()
    with ThreadedServer(api.app()) as server:
        api.url = server.url
        yield api

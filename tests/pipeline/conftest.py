"""Fixtures of the pipeline tests: a private AIRFLOW_HOME, and a state DB on SQLite and on PostgreSQL.

PostgreSQL runs use a throwaway database ``fbmkto_pipe_<random>`` on 127.0.0.1:5432 (user postgres), created
once per session and dropped at the end; they skip with the reason when the server is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.state.models import Base


@pytest.fixture
def airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private AIRFLOW_HOME (state DB, staging, reports), a Fernet key, clean Marketo process state."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("FBMKTO_CONFIG", raising=False)
    reset_process_state()
    yield tmp_path
    reset_process_state()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> StateDB:
    """A fresh, empty state DB on each backend."""
    if request.param == "sqlite":
        return StateDB(f"sqlite:///{tmp_path}/state.db")
    url: str = request.getfixturevalue("pg_url")
    db = StateDB(url)
    db.create_all()
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return db

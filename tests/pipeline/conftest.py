"""Fixtures of the pipeline tests: a private AIRFLOW_HOME, and a state DB on SQLite and on PostgreSQL.

PostgreSQL runs use a throwaway database ``fbmkto_pipe_<random>`` on 127.0.0.1:5432 (user postgres), created
once per session and dropped at the end; they skip with the reason when the server is unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.state.models import Base

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private AIRFLOW_HOME (state DB, staging, reports), a Fernet key, clean Marketo process state."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("FBMKTO_CONFIG", raising=False)
    reset_process_state()
    yield tmp_path
    reset_process_state()


def _pg_unreachable_reason() -> str | None:
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        psycopg2.connect(dbname="postgres", connect_timeout=2, **PG).close()
    except psycopg2.OperationalError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"PostgreSQL at 127.0.0.1:5432 (user postgres) is unreachable: {first}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database for this session (dropped afterwards)."""
    reason = _pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    import psycopg2

    name = f"fbmkto_pipe_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        yield url
        StateDB(url).dispose()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


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

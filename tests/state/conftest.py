"""Fixtures for the state DB tests: every store runs on SQLite (tmp file) and on PostgreSQL.

PostgreSQL tests use a throwaway database ``fbmkto_test_<random>`` on 127.0.0.1:5432 (user postgres), dropped at
the end of the session; they skip with the reason when the server is unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.state.models import Base

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


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
    """URL of a throwaway PostgreSQL database for this session."""
    reason = _pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    import psycopg2

    name = f"fbmkto_test_{uuid.uuid4().hex[:12]}"
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
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty state database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('state')}/state.db"
    url: str = request.getfixturevalue("pg_url")
    db = StateDB(url)
    db.create_all()
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return url


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def db(db_url: str, key: str) -> StateDB:
    return StateDB(db_url, fernet_key=key)

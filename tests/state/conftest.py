"""Fixtures for the state DB tests: every store runs on SQLite (tmp file) and on PostgreSQL.

PostgreSQL tests use a throwaway database ``fbmkto_test_<random>`` on 127.0.0.1:5432 (user postgres), dropped at
the end of the session; they skip with the reason when the server is unreachable.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.state.models import Base


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

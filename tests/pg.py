"""The machine's PostgreSQL for tests: 127.0.0.1:5432, user postgres, trust auth; throwaway databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def pg_unreachable_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or ``None`` when it can (tests skip with this reason)."""
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


@contextmanager
def throwaway_database(prefix: str = "fbmkto_test") -> Iterator[str]:
    """Create database ``<prefix>_<random>``, yield its SQLAlchemy URL, drop it (even if in use) afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        finally:
            from airflow_provider_fbmkto.state import StateDB

            StateDB(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}").dispose()
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()

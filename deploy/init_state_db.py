"""Make sure the provider's state database exists and has its schema (run by the ``airflow-init`` service).

On a fresh PostgreSQL volume ``deploy/init-state-db.sql`` has already created the database; on a volume made
before that script was mounted (or on an external server) this creates it, connecting to the server's
``postgres`` maintenance database with the same credentials. Then it creates the tables (idempotent; the
package also does that lazily on first use) and refuses a schema newer than the installed package.

The state DB is the ``fbmkto_state`` connection (``AIRFLOW_CONN_FBMKTO_STATE`` in docker-compose.yaml).
Prints the URL with its password masked; exits non-zero with the reason when the database is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def ensure_database(url: Any) -> bool:
    """Create the PostgreSQL database named in ``url`` if it does not exist.

    :param url: a SQLAlchemy ``URL`` of a ``postgresql`` database.
    :return: True if it was created, False if it existed.
    """
    import psycopg2
    from psycopg2 import sql

    params = {
        "host": url.host,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "dbname": "postgres",
        **{k: v for k, v in url.query.items() if k in ("sslmode", "sslrootcert", "sslcert", "sslkey")},
    }
    conn = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
            return True
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="create the fbmkto state database and its schema if missing")
    parser.add_argument("--conn-id", default="fbmkto_state", help="connection of the state DB")
    args = parser.parse_args(argv)

    from sqlalchemy import make_url

    from airflow_provider_fbmkto.exceptions import FbmktoError
    from airflow_provider_fbmkto.state import StateDB

    try:
        db = StateDB.from_airflow(args.conn_id)
        url = make_url(db.engine.url)
        if db.dialect == "postgresql" and url.database and ensure_database(url):
            print(f"created the database {url.database!r}")
        db.create_all()
    except FbmktoError as exc:
        print(f"fbmkto state DB: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # connection refused, bad password, ...: say which DB, never the password
        print(f"fbmkto state DB: cannot prepare it: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"fbmkto state DB ready: {db.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

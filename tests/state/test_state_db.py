from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.state import StateDB, TokenPair, url_from_connection

PAIR = TokenPair("acc-token", "ref-token", datetime(2030, 1, 1, tzinfo=timezone.utc), "s")


def test_password_is_masked_in_url_repr_and_str() -> None:
    db = StateDB("postgresql+psycopg2://fbmkto:S3cret-pw%40x@db.internal:5432/state", fernet_key="k")
    for shown in (db.url, repr(db), str(db), f"{db}"):
        assert "S3cret" not in shown
        assert "***" in shown
    assert db.dialect == "postgresql"


def test_postgres_scheme_aliases_use_psycopg2() -> None:
    assert StateDB("postgres://u@h/db").url == "postgresql+psycopg2://u@h/db"
    assert StateDB("postgresql://u@h/db").url == "postgresql+psycopg2://u@h/db"


def test_unsupported_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sqlite and postgresql"):
        StateDB("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL"):
        StateDB("not a url")


def test_create_all_is_idempotent_and_lazy(db_url: str) -> None:
    db = StateDB(db_url)
    assert db.watermarks.get("acme", "x") is None  # first use creates the schema
    db.create_all()
    db.create_all()
    tables = set(inspect(db.engine).get_table_names())
    assert {"fbmkto_ledger", "fbmkto_oauth_tokens", "fbmkto_call_budget", "fbmkto_webhook_events"} <= tables


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    db = StateDB(f"sqlite:///{path}")
    db.budget.spend("inst")
    assert path.exists()


def test_in_memory_sqlite_works_single_threaded() -> None:
    db = StateDB("sqlite://")
    assert db.budget.spend("inst", 3) == 3
    assert db.budget.used("inst") == 3
    db.dispose()


def test_url_from_connection_fields() -> None:
    url = url_from_connection(
        conn_type="postgres",
        host="db.internal",
        login="fbmkto",
        password="p@ss/word",
        port=5433,
        schema="state",
        extra={"sslmode": "require", "fernet_key": "k"},
    )
    assert url is not None
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "fbmkto",
        "p@ss/word",
        "db.internal",
        5433,
        "state",
    )
    assert dict(url.query) == {"sslmode": "require"}
    sqlite_url = url_from_connection(conn_type="sqlite", host="/var/lib/fbmkto/state.db")
    assert sqlite_url is not None
    assert sqlite_url.database == "/var/lib/fbmkto/state.db"
    assert url_from_connection(conn_type="sqlite") is None  # -> default file
    explicit = url_from_connection(conn_type="http", extra={"sqlalchemy_url": "postgresql://u@h/x"})
    assert explicit is not None
    assert explicit.database == "x"
    with pytest.raises(ConfigError, match="conn_type 'mysql'"):
        url_from_connection(conn_type="mysql", host="h")
    with pytest.raises(ConfigError, match="unknown extra"):
        url_from_connection(conn_type="postgres", extra={"Authorization": "x"})


def test_state_package_does_not_import_airflow_or_hooks() -> None:
    code = (
        "import sys, airflow_provider_fbmkto.state as s\n"
        "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith(('airflow.', "
        "'airflow_provider_fbmkto.hooks', 'airflow_provider_fbmkto.operators')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_state_db_in_an_airflow_process_does_not_load_airflows_models(tmp_path: Path) -> None:
    # Airflow hooks the first configuration of any SQLAlchemy ORM mapper to import all of its own models (a
    # second or so at every task's start); the state DB's tables are plain Core tables, so it never fires.
    code = (
        "import sys, airflow.settings\n"
        "from sqlalchemy.orm import Mapper\n"
        "from airflow_provider_fbmkto.state import RowOutcome, StateDB\n"
        f"db = StateDB('sqlite:///{tmp_path}/state.db')\n"
        "db.ledger.plan('acme', 'r1', [('lead:acme:a@x.com', 'lead', {'email': 'a@x.com'}, 'h')])\n"
        "(row,) = db.ledger.claim('acme', 'lead', limit=5, run_id='r2')\n"
        "db.ledger.mark([RowOutcome(row.key, 'written', 7, None)])\n"
        "db.budget.spend('inst', 1, account='acme')\n"
        "db.owners.claim('inst', 'lead', 'acme', ['a@x.com'], run_id='r2')\n"
        "assert db.ledger.get(row.key).marketo_id == '7'\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('airflow.models.dagbag', 'airflow.models.xcom')))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "AIRFLOW_HOME": str(tmp_path)})


# ------------------------------------------------------------------------------------------- from_airflow


@pytest.fixture
def airflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "airflow_home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    for name in ("AIRFLOW_CONN_FBMKTO_STATE", "FBMKTO_FERNET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_from_airflow_default_sqlite_under_airflow_home(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("FBMKTO_FERNET_KEY", key)
    db = StateDB.from_airflow()
    expected = airflow_env / "fbmkto" / "state.db"
    assert db.url == f"sqlite:///{expected}"
    assert expected.parent.is_dir()
    db.tokens.save("freshbooks_acme", PAIR)
    assert StateDB(f"sqlite:///{expected}", fernet_key=key).tokens.load("freshbooks_acme") == PAIR
    assert StateDB.from_airflow() is db  # cached per (url, key)


def test_from_airflow_key_falls_back_to_airflow_core_fernet_key(
    airflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
    db = StateDB.from_airflow()
    db.tokens.save("freshbooks_acme", PAIR)
    assert StateDB(db.engine.url, fernet_key=key).tokens.load("freshbooks_acme") == PAIR


def test_from_airflow_sqlite_connection_with_fernet_extra(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    path = airflow_env.parent / "custom" / "state.db"
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())  # the extra wins over this
    monkeypatch.setenv(
        "AIRFLOW_CONN_FBMKTO_STATE",
        json.dumps({"conn_type": "sqlite", "host": str(path), "extra": {"fernet_key": key}}),
    )
    db = StateDB.from_airflow()
    assert db.url == f"sqlite:///{path}"
    db.tokens.save("freshbooks_acme", PAIR)
    assert path.exists()
    assert StateDB(f"sqlite:///{path}", fernet_key=key).tokens.load("freshbooks_acme") == PAIR


def test_from_airflow_postgres_connection(airflow_env: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> None:
    key = Fernet.generate_key().decode()
    database = pg_url.rsplit("/", 1)[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_FBMKTO_STATE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "login": "postgres",
                "schema": database,
                "extra": {"fernet_key": key},
            }
        ),
    )
    db = StateDB.from_airflow()
    assert db.dialect == "postgresql"
    assert db.url == pg_url
    now = datetime.now(timezone.utc)
    db.watermarks.set("acme", "from_airflow", now)
    assert StateDB(pg_url).watermarks.get("acme", "from_airflow") == now
    db.tokens.save("freshbooks_pg", PAIR)
    assert db.tokens.load("freshbooks_pg") == PAIR
    db.tokens.delete("freshbooks_pg")
    db.watermarks.delete("acme", "from_airflow")


def test_from_airflow_bad_connection_is_a_config_error(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FBMKTO_STATE", json.dumps({"conn_type": "mysql", "host": "h"}))
    with pytest.raises(ConfigError, match="postgres or sqlite"):
        StateDB.from_airflow()


def test_pooled_connections_are_not_shared_across_fork(db_url: str, tmp_path: Path) -> None:
    """Celery prefork: a child forked after the parent used the DB must open its own server connection."""
    import multiprocessing

    if not db_url.startswith("postgresql"):
        pytest.skip("server backend ids exist on PostgreSQL only")
    db = StateDB(db_url + "?application_name=fbmkto_fork_test")  # its own engine: a pool of one connection

    def backend_pid() -> int:
        with db.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    parent_pid = backend_pid()  # the pool now holds this connection
    out = tmp_path / "child_backend"

    def child() -> None:
        out.write_text(str(backend_pid()))
        assert db.budget.spend("inst") == 1

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert int(out.read_text()) != parent_pid
    assert backend_pid() == parent_pid  # the parent keeps its pooled connection
    assert db.budget.used("inst") == 1
    db.dispose()


def test_a_version_1_state_db_is_upgraded_in_place(db_url: str) -> None:
    """Version 2 added ``fbmkto_ledger.sent_at``: an existing state DB gets the column and keeps its rows."""
    from sqlalchemy import text

    from airflow_provider_fbmkto.state import db as state_db

    db = StateDB(db_url)
    db.ledger.plan("acme", "r1", [("k1", "activity", {"a": 1}, "h1")])
    with db.engine.begin() as conn:  # what a state DB written by version 1 looks like
        conn.execute(text("ALTER TABLE fbmkto_ledger DROP COLUMN sent_at"))
        conn.execute(text("ALTER TABLE fbmkto_oauth_tokens DROP COLUMN refused"))
        conn.execute(text("DELETE FROM fbmkto_meta WHERE key = 'schema_version'"))
        conn.execute(text("INSERT INTO fbmkto_meta (key, value) VALUES ('schema_version', '1')"))
    state_db._schema_ready.clear()

    db.create_all()

    assert "sent_at" in {c["name"] for c in inspect(db.engine).get_columns("fbmkto_ledger")}
    assert "refused" in {c["name"] for c in inspect(db.engine).get_columns("fbmkto_oauth_tokens")}
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM fbmkto_meta WHERE key = 'schema_version'")).scalar() == "3"
    [row] = db.ledger.claim("acme", "activity", limit=10, run_id="r2")
    assert row.key == "k1"
    assert row.sent_at is None
    db.ledger.mark_sent([row.key])
    [again] = db.ledger.in_flight("acme")
    assert again.sent_at is not None


def test_a_version_2_state_db_gets_scopes_seeded_from_its_successful_runs(db_url: str) -> None:
    """Version 3 added account scopes and ``moved_from``: the scope starts as the span the runs covered."""
    from datetime import datetime, timezone

    from sqlalchemy import text

    from airflow_provider_fbmkto.state import db as state_db
    from airflow_provider_fbmkto.sync.scope import Scope

    def at(day: int) -> datetime:
        return datetime(2026, 3, day, tzinfo=timezone.utc)

    db = StateDB(db_url)
    for run, (start, end, status) in enumerate([(2, 3, "success"), (5, 6, "success"), (9, 10, "failed")]):
        db.runs.start("acme", f"r{run}", window_start=at(start), window_end=at(end))
        db.runs.finish("acme", f"r{run}", status=status)
    with db.engine.begin() as conn:  # what a state DB written by version 2 looks like
        conn.execute(text("DROP TABLE fbmkto_scope"))
        conn.execute(text("DROP TABLE fbmkto_scope_runs"))
        conn.execute(text("DROP INDEX ix_fbmkto_fb_records_moved"))
        conn.execute(text("ALTER TABLE fbmkto_fb_records DROP COLUMN moved_from"))
        conn.execute(text("DELETE FROM fbmkto_meta WHERE key = 'schema_version'"))
        conn.execute(text("INSERT INTO fbmkto_meta (key, value) VALUES ('schema_version', '2')"))
    state_db._schema_ready.clear()

    db.create_all()

    assert "moved_from" in {c["name"] for c in inspect(db.engine).get_columns("fbmkto_fb_records")}
    assert db.scopes.get("acme") == Scope(at(2), at(6))  # the failed run covered nothing
    assert db.scopes.get("globex") is None


def test_bulk_writes_and_reads_of_repeated_instants_keep_every_row_its_own_time(db_url: str) -> None:
    # The datetime type converts a run of equal values once (the ledger's hot path binds one `now` to every row
    # and reads the same instants back): rows with repeated, alternating and other-zone instants, written in one
    # executemany and by threads at once, each come back as their own UTC instant.
    from datetime import timedelta
    from threading import Barrier, Thread

    from sqlalchemy import insert, select

    from airflow_provider_fbmkto.state.models import Watermark

    db = StateDB(db_url)
    db.create_all()
    t1 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    t2 = t1 + timedelta(microseconds=1)
    berlin = t1.astimezone(timezone(timedelta(hours=1)))  # the same instant in another zone
    values = [t1, t1, t2, t1, berlin, t2, t2, t1 + timedelta(days=400)]
    with db.write_tx() as conn:
        conn.execute(
            insert(Watermark),
            [{"account": "bulk", "name": f"n{i}", "value": v, "updated_at": t1} for i, v in enumerate(values)],
        )
    with db.read_tx() as conn:
        got = {
            n: v for n, v in conn.execute(select(Watermark.name, Watermark.value).where(Watermark.account == "bulk"))
        }
    assert got == {f"n{i}": v for i, v in enumerate(values)}
    assert all(v.tzinfo is timezone.utc for v in got.values())

    barrier = Barrier(4)
    wrong: list[str] = []

    def writer(n: int) -> None:
        mine = t1 + timedelta(hours=n)
        barrier.wait()
        for round_ in range(20):
            with db.write_tx() as conn:
                conn.execute(
                    insert(Watermark),
                    [
                        {"account": f"t{n}", "name": f"{round_}.{i}", "value": mine, "updated_at": mine}
                        for i in range(5)
                    ],
                )
            with db.read_tx() as conn:
                rows = conn.execute(select(Watermark.value).where(Watermark.account == f"t{n}")).scalars().all()
            wrong.extend(f"thread {n}: {v}" for v in rows if v != mine)

    threads = [Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert wrong == []

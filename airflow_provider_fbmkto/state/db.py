"""The state database: one object giving the stores (tokens, budget, ledger, events, verifiers, watermarks, runs).

``StateDB(url)`` works on SQLite (default, one file under ``$AIRFLOW_HOME/fbmkto``) and PostgreSQL
(``postgresql+psycopg2://…``). Engines are cached per URL (never one module-global engine) and are made
fork-safe. Each store method is one unit of work in one short transaction; on SQLite write transactions start
with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of deadlocking.
The schema is created lazily on first use, so users need no migrate step.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.state.budget import CallBudget
from airflow_provider_fbmkto.state.events import WebhookEvents
from airflow_provider_fbmkto.state.ledger import Ledger
from airflow_provider_fbmkto.state.models import SCHEMA_VERSION, Base, Meta
from airflow_provider_fbmkto.state.owners import Owners
from airflow_provider_fbmkto.state.runs import RunLog
from airflow_provider_fbmkto.state.scope import Scopes
from airflow_provider_fbmkto.state.skip_retries import SkipRetries
from airflow_provider_fbmkto.state.tokens import TokenStore
from airflow_provider_fbmkto.state.upgrade import upgrade
from airflow_provider_fbmkto.state.verifiers import WebhookVerifiers
from airflow_provider_fbmkto.state.watermarks import Watermarks
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID as DEFAULT_CONN_ID  # re-exported: the public name
from airflow_provider_fbmkto.sync import jsontext

log = logging.getLogger(__name__)

#: Seconds a SQLite writer waits for the file lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 30.0
#: Arbitrary constant for pg_advisory_xact_lock around schema creation ("fbmkto" in ASCII).
_PG_SCHEMA_LOCK = 0x66626D6B746F
_SUPPORTED = ("sqlite", "postgresql")
#: Extras of the ``fbmkto_state`` connection; libpq options become URL query parameters.
_PG_QUERY_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options")
_ALLOWED_EXTRAS = ("sqlalchemy_url", "fernet_key", *_PG_QUERY_EXTRAS)

_lock = threading.Lock()
_engines: dict[tuple[str, bool], Engine] = {}
_schema_ready: set[tuple[str, bool]] = set()
_instances: dict[tuple[str, str | None], StateDB] = {}
#: One queue per SQLite database for this process's writers (see :meth:`StateDB.write_tx`).
_sqlite_writers: dict[tuple[str, bool], threading.RLock] = {}


def _after_fork_in_child() -> None:
    """Pooled connections must not cross a fork (Celery prefork, multiprocessing fork)."""
    global _lock
    _lock = threading.Lock()
    _sqlite_writers.clear()  # a lock held by another thread of the parent would never be released here
    for engine in list(_engines.values()):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _normalise_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise ConfigError(
            "the fbmkto state DB URL is not a valid SQLAlchemy URL; use e.g. sqlite:////path/state.db or "
            "postgresql+psycopg2://user:password@host:5432/dbname"
        ) from err
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    elif parsed.drivername.startswith("postgres+"):
        parsed = parsed.set(drivername="postgresql+" + parsed.drivername.split("+", 1)[1])
    backend = parsed.get_backend_name()
    if backend not in _SUPPORTED:
        raise ConfigError(
            f"the fbmkto state DB supports sqlite and postgresql URLs, not {backend!r}; "
            "set the `fbmkto_state` connection to a postgres or sqlite connection"
        )
    return parsed


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


#: The JSON columns (mirror records, ledger payloads) through the hot-path codec (see ``sync/jsontext.py``).
_JSON_CODEC: dict[str, Any] = {"json_serializer": jsontext.dumps, "json_deserializer": jsontext.loads}


def _build_engine(url: URL, echo: bool) -> Engine:
    if url.get_backend_name() == "postgresql":
        engine_kw: dict[str, Any] = {"pool_pre_ping": True}
        if url.get_driver_name() == "psycopg2":
            # Batch UPDATE executemany into pages (bulk ledger updates), not one round trip per row.
            engine_kw["executemany_mode"] = "values_plus_batch"
        return create_engine(url, echo=echo, **engine_kw, **_JSON_CODEC)

    if _is_memory(url):
        # One shared connection: fine for scripts and single-threaded tests, not for concurrent threads.
        engine = create_engine(
            url, echo=echo, poolclass=StaticPool, connect_args={"check_same_thread": False}, **_JSON_CODEC
        )
    else:
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, **_JSON_CODEC)
    memory = _is_memory(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _on_begin); pysqlite's legacy mode would not for SELECT/DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers use a deferred BEGIN (WAL: they never block writers); writers take the write lock up front,
        # so two writers never deadlock upgrading read locks.
        if conn.get_execution_options().get("fbmkto_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _engine_for(url: URL, echo: bool) -> tuple[Engine, tuple[str, bool]]:
    key = (url.render_as_string(hide_password=False), echo)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _build_engine(url, echo)
    return engine, key


def url_from_connection(
    *,
    conn_type: str | None,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
    conn_id: str = DEFAULT_CONN_ID,
) -> URL | None:
    """Turn the fields of an Airflow connection into the state DB's SQLAlchemy URL.

    :param conn_type: ``postgres``/``postgresql`` or ``sqlite`` (ignored when extra ``sqlalchemy_url`` is set).
    :return: the URL, or ``None`` for a sqlite connection without a path (meaning: use the default file).
    :raises ConfigError: unknown extra key or unsupported connection type.
    """
    extra = dict(extra or {})
    unknown = sorted(set(extra) - set(_ALLOWED_EXTRAS))
    if unknown:
        raise ConfigError(
            f"connection {conn_id!r} has unknown extra key(s) {unknown}; allowed: {', '.join(_ALLOWED_EXTRAS)}"
        )
    if extra.get("sqlalchemy_url"):
        return _normalise_url(str(extra["sqlalchemy_url"]))
    kind = (conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        query = {k: str(extra[k]) for k in _PG_QUERY_EXTRAS if extra.get(k) not in (None, "")}
        return URL.create(
            "postgresql+psycopg2",
            username=login or None,
            password=password or None,
            host=host or None,
            port=port or None,
            database=schema or None,
            query=query,
        )
    if kind == "sqlite":
        path = host or schema
        return URL.create("sqlite", database=path) if path else None
    raise ConfigError(
        f"connection {conn_id!r} has conn_type {conn_type!r}; the fbmkto state DB needs a postgres or sqlite "
        "connection, or an extra `sqlalchemy_url`"
    )


def default_sqlite_url() -> URL:
    """``sqlite:///$AIRFLOW_HOME/fbmkto/state.db`` (``~/airflow`` when AIRFLOW_HOME is unset); creates the dir."""
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()
    directory = home / "fbmkto"
    directory.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(directory / "state.db"))


class StateDB:
    """The state database and its stores.

    :param url: SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg2://…``).
    :param fernet_key: Fernet key, or a comma-separated list of keys (the first encrypts, all decrypt);
        needed only by :attr:`tokens`.
    :param echo: log every SQL statement (debugging).
    """

    def __init__(self, url: str | URL, *, fernet_key: str | None = None, echo: bool = False) -> None:
        self._url = _normalise_url(url)
        self.engine, self._engine_key = _engine_for(self._url, echo)
        self.fernet_key = fernet_key or None
        self.tokens = TokenStore(self)
        self.budget = CallBudget(self)
        self.ledger = Ledger(self)
        self.events = WebhookEvents(self)
        self.watermarks = Watermarks(self)
        self.runs = RunLog(self)
        self.scopes = Scopes(self)
        self.owners = Owners(self)
        self.skip_retries = SkipRetries(self)
        self.verifiers = WebhookVerifiers(self)

    @property
    def url(self) -> str:
        """The database URL with its password masked (safe to log)."""
        return self._url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._url.get_backend_name()

    def __repr__(self) -> str:
        return f"StateDB(url={self.url!r})"

    __str__ = __repr__

    # ----------------------------------------------------------------------------------------------- factory

    @classmethod
    def from_airflow(cls, conn_id: str = DEFAULT_CONN_ID) -> StateDB:
        """The state DB configured in Airflow, cached per (url, key) in this process.

        Connection ``conn_id`` (if it exists) gives the URL (postgres/sqlite fields, or extra ``sqlalchemy_url``)
        and extra ``fernet_key``. Without it: ``sqlite:///$AIRFLOW_HOME/fbmkto/state.db``. The key falls back
        to env ``FBMKTO_FERNET_KEY``, then Airflow's ``[core] fernet_key``.

        :param conn_id: the Airflow connection id of the state DB.
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        url: URL | None = None
        key: str | None = None
        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            conn = None
        if conn is not None:
            url = url_from_connection(
                conn_type=conn.conn_type,
                host=conn.host,
                login=conn.login,
                password=conn.password,
                port=conn.port,
                schema=conn.schema,
                extra=conn.extra_dejson,
                conn_id=conn_id,
            )
            key = conn.extra_dejson.get("fernet_key") or None
        if url is None:
            url = default_sqlite_url()
        if key is None:
            key = os.environ.get("FBMKTO_FERNET_KEY") or None
        if key is None:
            from airflow.configuration import conf

            key = conf.get("core", "fernet_key", fallback="") or None
        if key is not None:
            try:
                from airflow.sdk.log import mask_secret

                mask_secret(key)
            except ImportError:  # pragma: no cover - older task SDKs
                pass

        cache_key = (_normalise_url(url).render_as_string(hide_password=False), key)
        with _lock:
            instance = _instances.get(cache_key)
        if instance is None:
            instance = cls(url, fernet_key=key)
            with _lock:
                instance = _instances.setdefault(cache_key, instance)
        return instance

    # ------------------------------------------------------------------------------------------ transactions

    def create_all(self) -> None:
        """Create the tables and indexes if absent (idempotent, safe when several processes race)."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK})")
            Base.metadata.create_all(conn, checkfirst=True)
            current = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar_one_or_none()
            if current is None:
                conn.execute(self.insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(current) < SCHEMA_VERSION:
                upgrade(conn, int(current))
                conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION)))
            elif int(current) > SCHEMA_VERSION:
                raise ConfigError(
                    f"the fbmkto state DB at {self.url} has schema version {current}, newer than this package "
                    f"understands ({SCHEMA_VERSION}); upgrade airflow-provider-fbmkto on this worker"
                )
        with _lock:
            _schema_ready.add(self._engine_key)

    def _ensure_schema(self) -> None:
        if self._engine_key in _schema_ready:
            return
        try:
            self.create_all()
        except DBAPIError:
            # Another process may have created the same table between our check and our CREATE (SQLite DDL
            # is serialised by BEGIN IMMEDIATE, PostgreSQL by the advisory lock, but be tolerant): re-check once.
            self.create_all()

    @contextmanager
    def write_tx(self) -> Iterator[Connection]:
        """One write transaction (a unit of work); commits on success, rolls back on error.

        On SQLite the threads of one process queue for the write lock on a Python lock first: a thread then
        starts the moment the previous writer commits, instead of polling SQLite's busy handler, which sleeps
        in growing steps (up to 100 ms) however soon the lock is free. Other processes still meet the busy
        timeout; a writer that waited ``SQLITE_BUSY_TIMEOUT`` on the queue goes on to SQLite's own wait.
        """
        self._ensure_schema()
        queue = self._writer_queue()
        queued = queue is not None and queue.acquire(timeout=SQLITE_BUSY_TIMEOUT)
        try:
            with self.engine.begin() as conn:
                yield conn
        finally:
            if queued:
                assert queue is not None
                queue.release()

    def _writer_queue(self) -> threading.RLock | None:
        if self.dialect != "sqlite":
            return None
        queue = _sqlite_writers.get(self._engine_key)
        if queue is None:
            with _lock:
                queue = _sqlite_writers.setdefault(self._engine_key, threading.RLock())
        return queue

    @contextmanager
    def read_tx(self) -> Iterator[Connection]:
        """One read-only transaction (a deferred BEGIN on SQLite, so it never blocks writers)."""
        self._ensure_schema()
        with self.engine.connect() as conn:
            conn.execution_options(fbmkto_readonly=True)
            with conn.begin():
                yield conn

    def insert(self, model: Any) -> sqlite.Insert | postgresql.Insert:
        """The dialect's INSERT (with ``on_conflict_do_update``/``on_conflict_do_nothing`` and ``excluded``)."""
        if self.dialect == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    def dispose(self) -> None:
        """Close this URL's pooled connections and forget the cached engine (tests, shutdown)."""
        with _lock:
            _engines.pop(self._engine_key, None)
            _schema_ready.discard(self._engine_key)
            for cache_key in [k for k, v in _instances.items() if v is self]:
                del _instances[cache_key]
        self.engine.dispose()

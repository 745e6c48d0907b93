"""SQLAlchemy 2.x typed models of the state database.

Every table is prefixed ``fbmkto_`` so the state DB may share a PostgreSQL database (even Airflow's metadata
database) without name clashes. Times are stored as UTC: ``timestamptz`` on PostgreSQL, naive-UTC ISO text on
SQLite (which keeps string comparisons ordered); both come back as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, MappedColumn, mapped_column
from sqlalchemy.types import TypeDecorator

#: Bumped whenever a table changes shape; stored in ``fbmkto_meta``.
#: 2: ``fbmkto_ledger.sent_at``, ``fbmkto_oauth_tokens.refused``.
#: 3: ``fbmkto_scope`` and ``fbmkto_scope_runs`` (account scopes), ``fbmkto_fb_records.moved_from``.
SCHEMA_VERSION = 3


class UTCDateTime(TypeDecorator[datetime]):
    """An aware-UTC datetime on every backend; naive values are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the state DB; pass an aware datetime")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    # A bulk write binds one instant to every row (``updated_at=now`` of 300 outcomes, of 1,000 planned rows) and
    # a bulk read returns the same few instants over and over: converting each once per run of equal values takes
    # the datetime handling out of the ledger's hot path (a large share of the claims' and marks' own work in a
    # profile of the load). Each processor keeps its last value and result as one tuple (one atomic store, so
    # threads sharing the compiled statement never see a value paired with another's result). Binds compare by
    # identity (the very object, kept alive by the cache); results by equality (drivers return a new string or
    # datetime per row, and equal raw values convert to equal instants).

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)
        if process is None:
            return None
        last: list[tuple[Any, Any]] = [(None, None)]

        def bind(value: Any) -> Any:
            seen, out = last[0]
            if value is seen and value is not None:
                return out
            out = process(value)
            last[0] = (value, out)
            return out

        return bind

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        process = super().result_processor(dialect, coltype)
        if process is None:
            return None
        last: list[tuple[Any, Any]] = [(None, None)]

        def result(value: Any) -> Any:
            seen, out = last[0]
            if value is not None and type(value) is type(seen) and value == seen:
                return out
            out = process(value)
            last[0] = (value, out)
            return out

        return result


class Base:
    """Base of the state DB's tables: declared like SQLAlchemy's ORM models, built as plain Core tables.

    A subclass lists its columns as ``name: Mapped[T] = mapped_column(...)`` (``Mapped[T | None]`` for a nullable
    one) with ``__tablename__`` and ``__table_args__``; the class then holds its :class:`~sqlalchemy.Table`
    (``__table__``) and, under each column's name, the table's column, and stands for the table in ``select``,
    ``insert``, ``update`` and ``delete``. No ORM mapper is made: the state DB uses Core statements only, and the
    first use of any mapper in a process configures every mapper there is -- in an Airflow task process that
    imports all of Airflow's models (Airflow's ``before_configured`` hook), about a second of every task's start.
    """

    metadata: ClassVar[MetaData] = MetaData()
    __table__: ClassVar[Table]
    __tablename__: ClassVar[str]
    __table_args__: ClassVar[tuple[Any, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = vars(cls).get("__annotations__", {})
        columns: list[Column[Any]] = []
        for name, value in list(vars(cls).items()):
            if not isinstance(value, MappedColumn):
                continue
            column = value.column
            column.name = column.key = name
            # as the ORM reads the annotation: Mapped[T | None] is nullable, Mapped[T] is NOT NULL (the annotation
            # decides: a column's nullable= must say the same, as every one here does; the DDL is unchanged)
            column.nullable = "None" in str(annotations.get(name, "")) and not column.primary_key
            columns.append(column)
        cls.__table__ = Table(cls.__tablename__, cls.metadata, *columns, *cls.__table_args__)
        for column in cls.__table__.c:
            setattr(cls, column.key, column)

    @classmethod
    def __clause_element__(cls) -> Table:
        return cls.__table__


class Meta(Base):
    """Key/value facts about the schema itself (``schema_version``)."""

    __tablename__ = "fbmkto_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class OAuthToken(Base):
    """One connection's current OAuth token pair, Fernet-encrypted as a whole (never plaintext)."""

    __tablename__ = "fbmkto_oauth_tokens"

    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Why FreshBooks refused the stored refresh token (spent or revoked), until the next authorization.
    refused: Mapped[str | None] = mapped_column(Text, nullable=True)


class TokenLease(Base):
    """The refresh lock of one connection: whoever holds an unexpired row may spend the refresh token."""

    __tablename__ = "fbmkto_token_leases"

    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallBudgetDay(Base):
    """Calls spent on one Marketo instance during one Marketo day (America/Chicago)."""

    __tablename__ = "fbmkto_call_budget"

    instance: Mapped[str] = mapped_column(String(250), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerEntry(Base):
    """The audit ledger: one row per idempotency key."""

    __tablename__ = "fbmkto_ledger"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    account: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_hash: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    marketo_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: When the row's batch last went out to Marketo (or the send was given up); ``None`` while claimed but not
    #: sent. An in-doubt activity is read back until Marketo can no longer apply a late write (see the loader).
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_fbmkto_ledger_claim", "account", "kind", "status", "key"),
        Index("ix_fbmkto_ledger_status", "account", "status", "updated_at"),
        Index("ix_fbmkto_ledger_run", "account", "run_id"),
    )


class WebhookEventRow(Base):
    """A FreshBooks webhook delivery, recorded once per (account, delivery id)."""

    __tablename__ = "fbmkto_webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    object_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(64))
    business_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivery_id: Mapped[str] = mapped_column(String(128))
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    consumed_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)

    __table_args__ = (
        UniqueConstraint("account", "delivery_id", name="uq_fbmkto_webhook_delivery"),
        Index("ix_fbmkto_webhook_pending", "account", "consumed_at", "received_at"),
    )


class Watermark(Base):
    """A named high-water mark per account (e.g. the last reconciled Marketo ``updatedAt``)."""

    __tablename__ = "fbmkto_watermarks"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FeedPosition(Base):
    """Where an account has read a Marketo feed to (e.g. the Lead Changes ``nextPageToken``), and when."""

    __tablename__ = "fbmkto_feed_positions"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SyncRun(Base):
    """One sync run of one account: its window, outcome and summary."""

    __tablename__ = "fbmkto_runs"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_fbmkto_runs_status", "account", "status", "finished_at"),)

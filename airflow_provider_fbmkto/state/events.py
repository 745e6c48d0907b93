"""FreshBooks webhook events, recorded by the receiver and consumed by the account's next run.

An event whose record cannot be read (FreshBooks answers 404 for it, say) must not block the others: each
failed read is counted in ``fbmkto_webhook_event_failures`` (one row per event); the event stays pending for the
next run until it has failed ``limit`` times, then it is marked failed with its last reason and no run reads it
again. Consumed and failed events are deleted after the account's retention (:meth:`WebhookEvents.purge`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Integer, String, Text, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.state._util import CHUNK, as_utc, chunked, utcnow
from airflow_provider_fbmkto.state.models import Base, UTCDateTime, WebhookEventRow

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB


@dataclass(frozen=True)
class WebhookEvent:
    """One recorded webhook delivery (FreshBooks sends ``name``, ``object_id``, ``account_id``, …)."""

    id: int
    account: str
    name: str
    object_id: str
    account_id: str
    business_id: str | None
    user_id: str | None
    received_at: datetime
    delivery_id: str
    consumed_at: datetime | None = None
    consumed_run_id: str | None = None


class WebhookEventFailureRow(Base):
    """The failed reads of one webhook event; ``failed_at`` is set once no run will try it again."""

    __tablename__ = "fbmkto_webhook_event_failures"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(128), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_run_id: Mapped[str] = mapped_column(String(250))
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


@dataclass(frozen=True)
class EventFailure:
    """An event that could not be read: how often, why (the last time), and whether it is given up.

    :param failed_at: when it was marked failed (no run reads it again); ``None`` while it is still retried.
    """

    event_id: int
    account: str
    name: str
    object_id: str
    received_at: datetime
    attempts: int
    reason: str
    last_attempt_at: datetime
    last_run_id: str
    failed_at: datetime | None

    @property
    def failed(self) -> bool:
        return self.failed_at is not None


_COLUMNS = tuple(WebhookEventRow.__table__.c)
_F = WebhookEventFailureRow
_FAILURE_COLUMNS = tuple(_F.__table__.c)
_NOT_FAILED = ~select(_F.event_id).where(_F.event_id == WebhookEventRow.id, _F.failed_at.is_not(None)).exists()


class WebhookEvents:
    """Recorded webhook deliveries per account; a delivery id is recorded at most once (race-safe)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def record(
        self,
        account: str,
        *,
        name: str,
        object_id: str,
        account_id: str,
        business_id: str | None,
        user_id: str | None,
        received_at: datetime,
        delivery_id: str,
    ) -> bool:
        """Record one delivery; return ``True`` if new, ``False`` for a duplicate ``delivery_id`` of ``account``.

        :param delivery_id: a stable id of the delivery (e.g. a hash of the signed form).
        """
        stmt = (
            self._db.insert(WebhookEventRow)
            .values(
                account=account,
                name=name,
                object_id=str(object_id),
                account_id=str(account_id),
                business_id=None if business_id is None else str(business_id),
                user_id=None if user_id is None else str(user_id),
                received_at=as_utc(received_at, "received_at"),
                delivery_id=delivery_id,
            )
            .on_conflict_do_nothing(index_elements=[WebhookEventRow.account, WebhookEventRow.delivery_id])
            .returning(WebhookEventRow.id)
        )
        with self._db.write_tx() as conn:
            return conn.execute(stmt).scalar_one_or_none() is not None

    def pending(self, account: str, *, limit: int = 1000) -> list[WebhookEvent]:
        """Unconsumed events of ``account`` that are not marked failed, oldest first."""
        stmt = (
            select(*_COLUMNS)
            .where(WebhookEventRow.account == account, WebhookEventRow.consumed_at.is_(None), _NOT_FAILED)
            .order_by(WebhookEventRow.received_at, WebhookEventRow.id)
            .limit(limit)
        )
        with self._db.read_tx() as conn:
            return [WebhookEvent(**r._asdict()) for r in conn.execute(stmt)]

    def has_pending(self, account: str) -> bool:
        """Whether ``account`` has unconsumed events that are not marked failed (cheap; for sensors)."""
        stmt = (
            select(WebhookEventRow.id)
            .where(WebhookEventRow.account == account, WebhookEventRow.consumed_at.is_(None), _NOT_FAILED)
            .limit(1)
        )
        with self._db.read_tx() as conn:
            return conn.execute(stmt).first() is not None

    def mark_consumed(self, ids: Iterable[int], run_id: str) -> None:
        """Mark events consumed by ``run_id`` (already consumed ones keep their first consumer)."""
        now = utcnow()
        with self._db.write_tx() as conn:
            for chunk in chunked(ids, CHUNK):
                conn.execute(
                    update(WebhookEventRow)
                    .where(WebhookEventRow.id.in_(chunk), WebhookEventRow.consumed_at.is_(None))
                    .values(consumed_at=now, consumed_run_id=run_id)
                )

    def record_failure(
        self, event: WebhookEvent, reason: str, run_id: str, *, limit: int, give_up: bool = False
    ) -> EventFailure:
        """Count one failed read of ``event``; at ``limit`` failed reads (or at once with ``give_up``: nothing
        will ever make it readable) it is marked failed, so :meth:`pending` no longer returns it.

        :param reason: why, for the operator (no secret: the callers pass the API's redacted message).
        """
        now = utcnow()
        values = {
            "account": event.account,
            "reason": reason[:2000],
            "last_attempt_at": now,
            "last_run_id": run_id,
        }
        upsert = self._db.insert(_F).values(event_id=event.id, attempts=1, **values)
        upsert = upsert.on_conflict_do_update(
            index_elements=[_F.event_id], set_={"attempts": _F.attempts + 1, **values}
        )
        with self._db.write_tx() as conn:
            conn.execute(upsert)
            conn.execute(
                update(_F)
                .where(_F.event_id == event.id, _F.failed_at.is_(None), *(() if give_up else (_F.attempts >= limit,)))
                .values(failed_at=now)
            )
            row = conn.execute(select(*_FAILURE_COLUMNS).where(_F.event_id == event.id)).one()
        return EventFailure(name=event.name, object_id=event.object_id, received_at=event.received_at, **row._asdict())

    def failures(
        self, account: str, *, failed: bool | None = None, run_id: str | None = None, limit: int = 200
    ) -> list[EventFailure]:
        """Events of ``account`` that could not be read, latest attempt first.

        :param failed: ``True``: only those marked failed; ``False``: only those still retried; ``None``: both.
        :param run_id: only those whose latest failed read was in this run.
        """
        stmt = (
            select(*_FAILURE_COLUMNS, WebhookEventRow.name, WebhookEventRow.object_id, WebhookEventRow.received_at)
            .join(WebhookEventRow, WebhookEventRow.id == _F.event_id)
            .where(_F.account == account, WebhookEventRow.consumed_at.is_(None))
            .order_by(_F.last_attempt_at.desc(), _F.event_id.desc())
            .limit(limit)
        )
        if failed is not None:
            stmt = stmt.where(_F.failed_at.is_not(None) if failed else _F.failed_at.is_(None))
        if run_id is not None:
            stmt = stmt.where(_F.last_run_id == run_id)
        with self._db.read_tx() as conn:
            return [EventFailure(**r._asdict()) for r in conn.execute(stmt)]

    def purge(self, account: str, before: datetime) -> int:
        """Delete the events of ``account`` consumed before ``before``, and those marked failed before it (with
        their failure rows); returns how many events."""
        before = as_utc(before, "before")
        failed_before = select(_F.event_id).where(_F.account == account, _F.failed_at < before)
        with self._db.write_tx() as conn:
            ids = list(
                conn.execute(
                    select(WebhookEventRow.id).where(
                        WebhookEventRow.account == account,
                        or_(WebhookEventRow.consumed_at < before, WebhookEventRow.id.in_(failed_before)),
                    )
                ).scalars()
            )
            for chunk in chunked(ids, CHUNK):
                conn.execute(delete(_F).where(_F.event_id.in_(chunk)))
                conn.execute(delete(WebhookEventRow).where(WebhookEventRow.id.in_(chunk)))
        return len(ids)

"""FreshBooks webhook events, recorded by the receiver and consumed by the account's next run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from airflow_provider_fbmkto.state._util import CHUNK, as_utc, chunked, utcnow
from airflow_provider_fbmkto.state.models import WebhookEventRow

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


_COLUMNS = tuple(WebhookEventRow.__table__.c)


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
        """Unconsumed events of ``account``, oldest first."""
        stmt = (
            select(*_COLUMNS)
            .where(WebhookEventRow.account == account, WebhookEventRow.consumed_at.is_(None))
            .order_by(WebhookEventRow.received_at, WebhookEventRow.id)
            .limit(limit)
        )
        with self._db.read_tx() as conn:
            return [WebhookEvent(**r._asdict()) for r in conn.execute(stmt)]

    def has_pending(self, account: str) -> bool:
        """Whether ``account`` has unconsumed events (cheap; for sensors)."""
        stmt = (
            select(WebhookEventRow.id)
            .where(WebhookEventRow.account == account, WebhookEventRow.consumed_at.is_(None))
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

    def purge_consumed(self, before: datetime) -> int:
        """Delete events consumed before ``before``; returns how many."""
        with self._db.write_tx() as conn:
            return conn.execute(
                delete(WebhookEventRow).where(WebhookEventRow.consumed_at < as_utc(before, "before"))
            ).rowcount

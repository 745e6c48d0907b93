"""Named high-water marks per account (e.g. the last reconciled Marketo ``updatedAt``) and feed positions
(e.g. where the account has read Marketo's Lead Changes feed to: an opaque ``nextPageToken``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from airflow_provider_fbmkto.state._util import as_utc, utcnow
from airflow_provider_fbmkto.state.models import FeedPosition, Watermark

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB


class Watermarks:
    """Get and set watermarks; ``set_max`` only ever moves one forward (atomically)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def get(self, account: str, name: str) -> datetime | None:
        """The watermark, aware UTC, or ``None`` if never set."""
        with self._db.read_tx() as conn:
            return conn.execute(
                select(Watermark.value).where(Watermark.account == account, Watermark.name == name)
            ).scalar_one_or_none()

    def set(self, account: str, name: str, value: datetime) -> None:
        """Set the watermark to ``value`` (may move it backwards, e.g. to re-reconcile)."""
        self._upsert(account, name, value, only_forward=False)

    def set_max(self, account: str, name: str, value: datetime) -> datetime:
        """Move the watermark to ``value`` unless it is already later; returns the resulting watermark."""
        return self._upsert(account, name, value, only_forward=True)

    def delete(self, account: str, name: str) -> None:
        """Forget the watermark."""
        with self._db.write_tx() as conn:
            conn.execute(delete(Watermark).where(Watermark.account == account, Watermark.name == name))

    def position(self, account: str, name: str) -> tuple[str, datetime] | None:
        """A feed position and when it was stored, or ``None`` if never stored."""
        with self._db.read_tx() as conn:
            row = conn.execute(
                select(FeedPosition.position, FeedPosition.updated_at).where(
                    FeedPosition.account == account, FeedPosition.name == name
                )
            ).one_or_none()
        return None if row is None else (row[0], as_utc(row[1], "feed position"))

    def set_position(self, account: str, name: str, position: str) -> None:
        """Store a feed position (replacing the last one)."""
        stmt = self._db.insert(FeedPosition).values(account=account, name=name, position=position, updated_at=utcnow())
        stmt = stmt.on_conflict_do_update(
            index_elements=[FeedPosition.account, FeedPosition.name],
            set_={"position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at},
        )
        with self._db.write_tx() as conn:
            conn.execute(stmt)

    def delete_position(self, account: str, name: str) -> None:
        """Forget a feed position (the next read starts from a date again)."""
        with self._db.write_tx() as conn:
            conn.execute(delete(FeedPosition).where(FeedPosition.account == account, FeedPosition.name == name))

    def _upsert(self, account: str, name: str, value: datetime, *, only_forward: bool) -> datetime:
        stmt = self._db.insert(Watermark).values(
            account=account, name=name, value=as_utc(value, "watermark"), updated_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[Watermark.account, Watermark.name],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            where=(Watermark.value < stmt.excluded.value) if only_forward else None,
        )
        with self._db.write_tx() as conn:
            conn.execute(stmt)
            return conn.execute(
                select(Watermark.value).where(Watermark.account == account, Watermark.name == name)
            ).scalar_one()

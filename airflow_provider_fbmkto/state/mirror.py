"""The FreshBooks mirror: every client, invoice and payment of an account, as last extracted.

Why a mirror: the facts a run sends depend on more than the records that changed in its window. A company's
``fbInvoiceCount`` and payment status count *all* its clients' invoices; a backfill of March needs the
payments dated in March whatever their ``updated`` time. FreshBooks only searches by ``updated`` (and
invoices by date), so each run pulls what changed since the last pull into this table and plans from it.
Deleted records stay, with their ``vis_state``: a deletion is a state change, not a disappearance.

A client whose e-mail changes keeps its previous e-mail in ``moved_from`` until a run has moved its lead
(:meth:`FreshBooksMirror.moves`, :meth:`FreshBooksMirror.clear_moves`): a dry run in between, or a failed
``map``, does not lose the move.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Date, Index, Integer, String, Text, and_, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.state._util import CHUNK, chunked, write_in_chunks
from airflow_provider_fbmkto.state.bulk import execute_many
from airflow_provider_fbmkto.state.models import Base
from airflow_provider_fbmkto.sync.codec import Record, from_json, kind_of, to_json, vis_state_of
from airflow_provider_fbmkto.sync.records import Client, ClientContact, Invoice, InvoiceNumber, Payment

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB


class FreshBooksRecordRow(Base):
    """One FreshBooks record of one account (``data`` is :func:`~airflow_provider_fbmkto.sync.codec.to_json`)."""

    __tablename__ = "fbmkto_fb_records"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    client_id: Mapped[int] = mapped_column(Integer)
    #: invoice create_date / payment date; NULL for clients.
    event_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    #: invoice due_date; NULL otherwise.
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: clients: the e-mail whose lead the sync has not yet moved away from (schema v3).
    moved_from: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_fbmkto_fb_records_client", "account", "client_id", "kind"),
        Index("ix_fbmkto_fb_records_event", "account", "kind", "event_date"),
        Index("ix_fbmkto_fb_records_due", "account", "kind", "due_date"),
        Index("ix_fbmkto_fb_records_moved", "account", "moved_from"),
    )


def _email(data: dict[str, Any]) -> str:
    return str(data.get("email") or "").strip().lower()


def _row_of_data(account: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The row of a record given as :func:`~airflow_provider_fbmkto.sync.codec.to_json` output (as staged),
    the same as :func:`_row` of the decoded record, without decoding and encoding it again."""
    if kind == "client":
        client_id, event, due = int(data["id"]), None, None
    elif kind == "invoice":
        client_id = int(data["customerid"])
        event, due = date.fromisoformat(data["create_date"]), date.fromisoformat(data["due_date"])
    elif kind == "payment":
        client_id, event, due = int(data["clientid"]), date.fromisoformat(data["date"]), None
    else:
        raise ValueError(f"unknown record kind {kind!r}")
    return {
        "account": account,
        "kind": kind,
        "id": int(data["id"]),
        "client_id": client_id,
        "event_date": event,
        "due_date": due,
        "data": data,
        "moved_from": None,
    }


def _row(account: str, record: Record) -> dict[str, Any]:
    kind = kind_of(record)
    if isinstance(record, Client):
        client_id, event, due = record.id, None, None
    elif isinstance(record, Invoice):
        client_id, event, due = record.customerid, record.create_date, record.due_date
    else:
        client_id, event, due = record.clientid, record.date, None
    return {
        "account": account,
        "kind": kind,
        "id": record.id,
        "client_id": client_id,
        "event_date": event,
        "due_date": due,
        "data": to_json(record),
        "moved_from": None,
    }


class FreshBooksMirror:
    """Upserts and range reads over :class:`FreshBooksRecordRow`; results stream in chunks."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def upsert(self, account: str, records: Iterable[Record]) -> int:
        """Insert or replace records (the last one of a key wins); returns the rows written (a key repeated more
        than ``CHUNK`` records apart is written, and counted, each time). A client's changed e-mail is
        remembered in ``moved_from`` (the first one, until :meth:`clear_moves`)."""
        return self._upsert_rows(account, (_row(account, rec) for rec in records))

    def upsert_data(self, account: str, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """:meth:`upsert` of ``(kind, data)`` pairs, ``data`` being :func:`~airflow_provider_fbmkto.sync.codec.to_json`
        output (a staged line's record): the same rows, without decoding each record only to encode it again."""
        return self._upsert_rows(account, (_row_of_data(account, kind, data) for kind, data in items))

    def _upsert_rows(self, account: str, rows_in: Iterable[dict[str, Any]]) -> int:
        stmt = self._db.insert(FreshBooksRecordRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account", "kind", "id"],
            set_={c: stmt.excluded[c] for c in ("client_id", "event_date", "due_date", "data", "moved_from")},
        )
        written = 0

        def write(conn: Any, chunk: list[dict[str, Any]]) -> None:
            nonlocal written
            rows = {(r["kind"], r["id"]): r for r in chunk}
            self._carry_moves(conn, account, [r for (kind, _), r in rows.items() if kind == "client"])
            execute_many(conn, stmt, list(rows.values()))
            written += len(rows)

        write_in_chunks(self._db, rows_in, write)
        return written

    @staticmethod
    def _carry_moves(conn: Any, account: str, rows: list[dict[str, Any]]) -> None:
        """Set ``moved_from`` of client rows about to be written: kept from before, or the old e-mail if it changed."""
        if not rows:
            return
        row = FreshBooksRecordRow
        q = select(row.id, row.data, row.moved_from).where(
            row.account == account, row.kind == "client", row.id.in_([r["id"] for r in rows])
        )
        before = {r.id: (_email(r.data), r.moved_from) for r in conn.execute(q)}
        for r in rows:
            old_email, moved_from = before.get(r["id"], ("", None))
            origin = moved_from or (old_email or None)
            r["moved_from"] = origin if origin and origin != _email(r["data"]) else None

    def moves(self, account: str) -> list[tuple[Client, str]]:
        """Clients whose e-mail changed since a run last moved their lead: ``(client now, previous e-mail)``."""
        row = FreshBooksRecordRow
        q = select(row.kind, row.data, row.moved_from).where(row.account == account, row.moved_from.is_not(None))
        found: list[tuple[Client, str]] = []
        with self._db.read_tx() as conn:
            for r in conn.execute(q.order_by(row.id)):
                rec = from_json(r.kind, r.data)
                if isinstance(rec, Client):
                    found.append((rec, str(r.moved_from)))
        return found

    def clear_moves(self, account: str, client_ids: Iterable[int]) -> None:
        """Forget the previous e-mails of these clients (their leads have been moved)."""
        row = FreshBooksRecordRow
        with self._db.write_tx() as conn:
            for ids in chunked(sorted(set(client_ids)), CHUNK):
                conn.execute(
                    update(row)
                    .where(row.account == account, row.kind == "client", row.id.in_(ids))
                    .values(moved_from=None)
                )

    def count(self, account: str, kind: str | None = None) -> int:
        q = select(func.count()).select_from(FreshBooksRecordRow).where(FreshBooksRecordRow.account == account)
        if kind:
            q = q.where(FreshBooksRecordRow.kind == kind)
        with self._db.read_tx() as conn:
            return int(conn.execute(q).scalar_one())

    def _stream(
        self,
        account: str,
        kind: str,
        column: Any = None,
        first: date | None = None,
        last: date | None = None,
        where: Any = None,
    ) -> Iterator[Record]:
        """Records of ``kind`` (with ``first <= column <= last`` when a column is given, and ``where`` when given),
        in pages so memory stays flat: keyed on ``id``, or on ``(column, id)`` for a range.

        Paging a range on ``id`` alone lets the database walk the primary key (all of the account's records of
        ``kind``) for every page instead of the date index; keyed on the date first, each page is a range of it.
        """
        row = FreshBooksRecordRow
        base = select(row.kind, row.id, row.data).where(row.account == account, row.kind == kind)
        if where is not None:
            base = base.where(where)
        if column is None:
            base = base.order_by(row.id)
        else:
            base = base.add_columns(column.label("at")).where(column.between(first, last)).order_by(column, row.id)
        base = base.limit(CHUNK * 4)
        query = base
        while True:
            with self._db.read_tx() as conn:
                rows = conn.execute(query).all()
            for r in rows:
                yield from_json(r.kind, r.data)
            if len(rows) < CHUNK * 4:
                return
            at, last_id = (None if column is None else rows[-1].at), rows[-1].id
            after = row.id > last_id
            query = base.where(after if column is None else or_(column > at, and_(column == at, after)))

    def _base(self, account: str, kind: str) -> Any:
        return select(FreshBooksRecordRow.kind, FreshBooksRecordRow.id, FreshBooksRecordRow.data).where(
            FreshBooksRecordRow.account == account, FreshBooksRecordRow.kind == kind
        )

    def clients(self, account: str) -> Iterator[Client]:
        for rec in self._stream(account, "client"):
            assert isinstance(rec, Client)
            yield rec

    def invoices_created(self, account: str, first: date, last: date) -> Iterator[Invoice]:
        """Invoices whose create_date is in ``[first, last]``."""
        for rec in self._stream(account, "invoice", FreshBooksRecordRow.event_date, first, last):
            assert isinstance(rec, Invoice)
            yield rec

    def invoices_due(
        self, account: str, first: date, last: date, *, created_outside: tuple[date, date] | None = None
    ) -> Iterator[Invoice]:
        """Invoices whose due_date is in ``[first, last]``; with ``created_outside``, only those whose create_date
        is not in that ``(first, last)`` range (the others having been read by create date already)."""
        row = FreshBooksRecordRow
        outside = None if created_outside is None else ~row.event_date.between(*created_outside)
        for rec in self._stream(account, "invoice", row.due_date, first, last, where=outside):
            assert isinstance(rec, Invoice)
            yield rec

    def payments_dated(self, account: str, first: date, last: date) -> Iterator[Payment]:
        for rec in self._stream(account, "payment", FreshBooksRecordRow.event_date, first, last):
            assert isinstance(rec, Payment)
            yield rec

    def _rows_by_ids(self, query: Any, ids: Iterable[int]) -> Iterator[Any]:
        """The rows of ``query`` (over :class:`FreshBooksRecordRow`) whose ``id`` is among ``ids``, a chunk a read."""
        for chunk in chunked(sorted(set(ids)), CHUNK):
            with self._db.read_tx() as conn:
                rows = conn.execute(query.where(FreshBooksRecordRow.id.in_(chunk))).all()
            yield from rows

    def _by_ids(self, account: str, kind: str, ids: Iterable[int]) -> Iterator[Record]:
        for r in self._rows_by_ids(self._base(account, kind), ids):
            yield from_json(r.kind, r.data)

    def clients_by_ids(self, account: str, ids: Iterable[int]) -> dict[int, Client]:
        """The given clients (those in the mirror), by id."""
        return {c.id: c for c in self._by_ids(account, "client", ids) if isinstance(c, Client)}

    def client_contacts(self, account: str, ids: Iterable[int]) -> dict[int, ClientContact]:
        """E-mail and deletion of the given clients (those in the mirror), by id: read out of the stored JSON by
        the database, without decoding whole records."""
        row = FreshBooksRecordRow
        q = select(row.id, row.data["email"].as_string(), row.data["vis_state"].as_integer()).where(
            row.account == account, row.kind == "client"
        )
        return {
            r[0]: ClientContact(r[0], r[1] or "", vis_state_of(0 if r[2] is None else r[2]))  # absent, as from_json
            for r in self._rows_by_ids(q, ids)
        }

    def invoice_numbers(self, account: str, ids: Iterable[int]) -> dict[int, InvoiceNumber]:
        """The numbers of the given invoices (those in the mirror), by id, read like :meth:`client_contacts`."""
        row = FreshBooksRecordRow
        q = select(row.id, row.data["invoice_number"].as_string()).where(row.account == account, row.kind == "invoice")
        return {r[0]: InvoiceNumber(r[0], r[1] or "") for r in self._rows_by_ids(q, ids)}

    def payments_of_invoices(self, account: str, invoices: Iterable[Invoice]) -> list[Payment]:
        """Every payment (deleted ones too) of the given invoices; read through their clients' index."""
        found: list[Payment] = []
        # Each query binds the chunk's invoice ids and (at most as many) client ids: under CHUNK * 2 in all.
        for chunk in chunked(sorted({(i.customerid, i.id) for i in invoices}), CHUNK // 2):
            q = select(FreshBooksRecordRow.kind, FreshBooksRecordRow.data).where(
                FreshBooksRecordRow.account == account,
                FreshBooksRecordRow.client_id.in_(sorted({c for c, _ in chunk})),
                FreshBooksRecordRow.kind == "payment",
                FreshBooksRecordRow.data["invoiceid"].as_integer().in_([i for _, i in chunk]),
            )
            with self._db.read_tx() as conn:
                rows = conn.execute(q).all()
            for r in rows:
                rec = from_json(r.kind, r.data)
                assert isinstance(rec, Payment)
                found.append(rec)
        return found

    def of_clients(self, account: str, client_ids: Iterable[int]) -> tuple[list[Invoice], list[Payment]]:
        """All invoices and payments of the given clients."""
        invoices: list[Invoice] = []
        payments: list[Payment] = []
        for ids in chunked(sorted(set(client_ids)), CHUNK):
            q = select(FreshBooksRecordRow.kind, FreshBooksRecordRow.data).where(
                FreshBooksRecordRow.account == account,
                FreshBooksRecordRow.client_id.in_(ids),
                FreshBooksRecordRow.kind.in_(("invoice", "payment")),
            )
            with self._db.read_tx() as conn:
                for r in conn.execute(q):
                    rec = from_json(r.kind, r.data)
                    if isinstance(rec, Invoice):
                        invoices.append(rec)
                    elif isinstance(rec, Payment):
                        payments.append(rec)
        return invoices, payments

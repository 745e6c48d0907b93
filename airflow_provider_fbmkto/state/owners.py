"""The owners store: which account wrote each Marketo lead e-mail and company key first (see ``sync/ownership.py``).

``fbmkto_owners`` has one row per (Marketo instance, kind, key) -- the primary key is the unique constraint that
serialises claims: :meth:`Owners.claim` inserts the rows that do not exist yet (``ON CONFLICT DO NOTHING``; on
PostgreSQL a concurrent insert of the same key waits for the other transaction, then yields to it) and reads the
owners back in the same transaction. Two processes claiming one e-mail at once therefore agree on one owner, and
the loader claims *before* it sends, so two accounts can never both create the person.

``fbmkto_sharing`` holds each account's sharing policy per instance, as its latest load declared it: an owner's
policy is what another account's write is decided against, so the decision needs no other account's config file.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import JSON, Boolean, Index, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.state._util import chunked, utcnow
from airflow_provider_fbmkto.state.models import Base, UTCDateTime
from airflow_provider_fbmkto.sync.ownership import COMPANY, LEAD, SharingPolicy

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB

__all__ = ["OwnedKey", "OwnerRow", "Owners", "SharingRow"]

_KINDS = (LEAD, COMPANY)


class OwnerRow(Base):
    """The account that first wrote one lead e-mail or company key of one Marketo instance."""

    __tablename__ = "fbmkto_owners"

    instance: Mapped[str] = mapped_column(String(250), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    account: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_fbmkto_owners_account", "instance", "account", "kind"),)


class SharingRow(Base):
    """One account's sharing policy on one instance, as its latest load declared it."""

    __tablename__ = "fbmkto_sharing"

    instance: Mapped[str] = mapped_column(String(250), primary_key=True)
    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    leads_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    companies: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OwnedKey(NamedTuple):
    """One owned key, as listed for operators."""

    instance: str
    kind: str
    key: str
    account: str
    claimed_at: datetime


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"unknown owned kind {kind!r}; use one of {_KINDS}")


class Owners:
    """Claim, read and release key ownership; declare and read sharing policies."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def claim(self, instance: str, kind: str, account: str, keys: Iterable[str], *, run_id: str) -> dict[str, str]:
        """Make ``account`` the owner of those ``keys`` nobody owns yet; return key → owner for every key.

        One transaction per chunk: the inserts and the read-back see the same committed owners, so concurrent
        claimers (threads, processes, workers) of one key all get the same answer.

        :param instance: the Marketo instance (``MarketoHook.instance``).
        :param kind: ``lead`` (keys are e-mails, lower-cased here) or ``company`` (company keys).
        :param account: the claiming account.
        :param keys: the keys it is about to write.
        :param run_id: the claiming run (kept on new rows, for operators).
        """
        _check_kind(kind)
        # Read first: a key once owned stays owned until released, so only the keys without an owner need the
        # write transaction (a reader never waits for the writers; a load mostly re-claims keys it owns).
        every = {k.strip().lower() if kind == LEAD else k for k in keys}
        owners = self.owners(instance, kind, every)
        wanted = sorted(every - set(owners))
        for chunk in chunked(wanted):
            now = utcnow()
            rows: list[dict[str, Any]] = [
                {"instance": instance, "kind": kind, "key": k, "account": account, "run_id": run_id, "claimed_at": now}
                for k in chunk
            ]
            with self._db.write_tx() as conn:
                conn.execute(
                    self._db.insert(OwnerRow).on_conflict_do_nothing(
                        index_elements=[OwnerRow.instance, OwnerRow.kind, OwnerRow.key]
                    ),
                    rows,
                )
                found = conn.execute(
                    select(OwnerRow.key, OwnerRow.account).where(
                        OwnerRow.instance == instance, OwnerRow.kind == kind, OwnerRow.key.in_(chunk)
                    )
                )
                owners.update((k, a) for k, a in found)
        return owners

    def owners(self, instance: str, kind: str, keys: Iterable[str]) -> dict[str, str]:
        """key → owner of the given keys that have one (reads only)."""
        _check_kind(kind)
        wanted = sorted({k.strip().lower() if kind == LEAD else k for k in keys})
        out: dict[str, str] = {}
        with self._db.read_tx() as conn:
            for chunk in chunked(wanted):
                found = conn.execute(
                    select(OwnerRow.key, OwnerRow.account).where(
                        OwnerRow.instance == instance, OwnerRow.kind == kind, OwnerRow.key.in_(chunk)
                    )
                )
                out.update((k, a) for k, a in found)
        return out

    def owned(self, account: str | None = None, *, instance: str | None = None, limit: int = 1000) -> list[OwnedKey]:
        """Owned keys (of one account, of one instance), oldest claim first."""
        where = []
        if account is not None:
            where.append(OwnerRow.account == account)
        if instance is not None:
            where.append(OwnerRow.instance == instance)
        stmt = (
            select(OwnerRow.instance, OwnerRow.kind, OwnerRow.key, OwnerRow.account, OwnerRow.claimed_at)
            .where(*where)
            .order_by(OwnerRow.claimed_at, OwnerRow.kind, OwnerRow.key)
            .limit(limit)
        )
        with self._db.read_tx() as conn:
            return [OwnedKey(*r) for r in conn.execute(stmt)]

    def release(self, account: str, *, kind: str | None = None, keys: Iterable[str] | None = None) -> int:
        """Give up ``account``'s ownership (of every key, of one kind, or of the given keys), on every instance.

        The next account to write a released key owns it. Returns the rows released.
        """
        where = [OwnerRow.account == account]
        if kind is not None:
            _check_kind(kind)
            where.append(OwnerRow.kind == kind)
        with self._db.write_tx() as conn:
            if keys is None:
                return int(conn.execute(delete(OwnerRow).where(*where)).rowcount)
            given = list(keys)
            total = 0
            for chunk in chunked(sorted({k.strip().lower() for k in given} | set(given))):
                total += int(conn.execute(delete(OwnerRow).where(*where, OwnerRow.key.in_(chunk))).rowcount)
            return total

    # ---------------------------------------------------------------------------------------- policies

    def declare(self, instance: str, account: str, policy: SharingPolicy) -> None:
        """Record ``account``'s sharing policy on ``instance`` (each load does, before it sends)."""
        values = {"leads_shared": policy.leads, "companies": sorted(policy.companies), "updated_at": utcnow()}
        stmt = self._db.insert(SharingRow).values(instance=instance, account=account, **values)
        with self._db.write_tx() as conn:
            conn.execute(
                stmt.on_conflict_do_update(index_elements=[SharingRow.instance, SharingRow.account], set_=values)
            )

    def policies(self, instance: str, accounts: Iterable[str]) -> dict[str, SharingPolicy]:
        """account → its declared policy on ``instance``, for the given accounts that declared one."""
        wanted = sorted(set(accounts))
        if not wanted:
            return {}
        with self._db.read_tx() as conn:
            rows = conn.execute(
                select(SharingRow.account, SharingRow.leads_shared, SharingRow.companies).where(
                    SharingRow.instance == instance, SharingRow.account.in_(wanted)
                )
            )
            return {a: SharingPolicy(bool(leads), frozenset(companies or ())) for a, leads, companies in rows}

"""Value types of the ledger: statuses, rows, outcomes, plan counts (no database access here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row

from airflow_provider_fbmkto.state.models import LedgerEntry

KINDS = frozenset({"activity", "lead", "company", "list", "campaign"})
#: Kinds whose written rows are never re-sent, whatever their new hash (Marketo would duplicate them).
WRITE_ONCE_KINDS = frozenset({"activity"})
#: Longest ``last_error`` kept (Marketo reasons are short; stack traces are not stored).
MAX_ERROR = 2000


class LedgerStatus(str, enum.Enum):
    """Status of a ledger row."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    WRITTEN = "written"
    SKIPPED = "skipped"
    FAILED = "failed"
    #: An activity never sent because its record was deleted (or its invoice went back to draft) first;
    #: planned again (pending) if the fact reappears.
    WITHDRAWN = "withdrawn"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row as stored."""

    key: str
    account: str
    kind: str
    payload: dict[str, Any]
    payload_hash: str
    status: LedgerStatus
    attempts: int
    last_error: str | None
    marketo_id: str | None
    run_id: str | None
    created_at: datetime
    updated_at: datetime
    written_at: datetime | None
    batch_id: str | None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class RowOutcome:
    """The result of sending one ledger row.

    :param key: the row's idempotency key.
    :param status: written, skipped (Marketo refused it for a reason that retrying won't fix), failed
        (retryable), or pending (not attempted after all).
    :param marketo_id: the Marketo id (lead id, company id, activity id) when known; kept if ``None``.
    :param error: Marketo's reason for skipped/failed.
    """

    key: str
    status: LedgerStatus | str
    marketo_id: str | int | None = None
    error: str | None = None


@dataclass(frozen=True)
class PlanResult:
    """Counts of one ``plan`` call.

    ``held``: in_flight rows whose payload changed; left untouched (they must be resolved first).
    ``kept``: written activity rows whose payload changed; activities are write-once, so they stay written.
    Both are also counted in ``unchanged``.
    """

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    held: int = 0
    kept: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "held": self.held,
            "kept": self.kept,
        }

    def __getitem__(self, name: str) -> int:
        return self.as_dict()[name]


#: Statuses of rows that were never sent and may be withdrawn (in_flight rows may be on their way).
WITHDRAWABLE = frozenset({LedgerStatus.PENDING.value, LedgerStatus.FAILED.value, LedgerStatus.SKIPPED.value})


def decide(found: tuple[str, str] | None, kind: str, payload_hash: str) -> str:
    """What planning ``payload_hash`` for a key does, given its stored ``(payload_hash, status)`` (or ``None``).

    One of ``new``, ``changed`` (back to pending with the new payload), ``unchanged``, ``held`` (in flight:
    resolved first) or ``kept`` (a written activity is write-once). A withdrawn row is planned again.
    """
    if found is None:
        return "new"
    stored_hash, status = found
    if status == LedgerStatus.WITHDRAWN.value:
        return "changed"
    if stored_hash == payload_hash:
        return "unchanged"
    if status == LedgerStatus.IN_FLIGHT.value:
        return "held"
    if kind in WRITE_ONCE_KINDS and status == LedgerStatus.WRITTEN.value:
        return "kept"
    return "changed"


COLUMNS = (
    LedgerEntry.key,
    LedgerEntry.account,
    LedgerEntry.kind,
    LedgerEntry.payload,
    LedgerEntry.payload_hash,
    LedgerEntry.status,
    LedgerEntry.attempts,
    LedgerEntry.last_error,
    LedgerEntry.marketo_id,
    LedgerEntry.run_id,
    LedgerEntry.created_at,
    LedgerEntry.updated_at,
    LedgerEntry.written_at,
    LedgerEntry.batch_id,
    LedgerEntry.sent_at,
)


#: status text → member, without the enum's own lookup (a claim reads 300 rows a batch)
_STATUS_OF = {s.value: s for s in LedgerStatus}


def row_from_db(r: Row[Any]) -> LedgerRow:
    """A row selected as :data:`COLUMNS` (in that order: the fields of :class:`LedgerRow`)."""
    (key, account, kind, payload, payload_hash, status, *rest) = cast("tuple[Any, ...]", r)
    return LedgerRow(key, account, kind, payload, payload_hash, _STATUS_OF.get(status) or LedgerStatus(status), *rest)


def parse_status(value: LedgerStatus | str) -> LedgerStatus:
    try:
        return LedgerStatus(value)
    except ValueError:
        raise ValueError(f"unknown ledger status {value!r}; use one of {[s.value for s in LedgerStatus]}") from None

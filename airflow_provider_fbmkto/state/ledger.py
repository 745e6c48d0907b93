"""The audit ledger: one row per idempotency key, tracking what was sent to Marketo and with what result.

Life of a row: ``plan`` makes it pending (a new key, or a changed payload of a written lead/company/list key;
written activities are write-once and stay written); ``claim`` moves a batch to in_flight; ``mark`` records
written / skipped / failed. A crash leaves rows in_flight: they are never sent again blindly, the loader
resolves them first (``in_flight``), then ``mark``s them or calls ``reset_to_pending``. An activity whose
record was deleted before it was sent is ``withdraw``n (planned again, as pending, if the fact comes back).
``preview`` answers what ``plan`` would do without writing (dry runs).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, or_, select, update

from airflow_provider_fbmkto.state._util import CHUNK, CHUNKS_PER_TX, chunked, utcnow, write_in_chunks
from airflow_provider_fbmkto.state.bulk import execute_many
from airflow_provider_fbmkto.state.ledger_reads import LedgerReads
from airflow_provider_fbmkto.state.ledger_types import (
    COLUMNS,
    KINDS,
    MAX_ERROR,
    WITHDRAWABLE,
    WRITE_ONCE_KINDS,
    LedgerRow,
    LedgerStatus,
    PlanResult,
    RowOutcome,
    decide,
    parse_status,
    row_from_db,
)
from airflow_provider_fbmkto.state.models import LedgerEntry

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

#: Rows :meth:`Ledger.plan` writes in one transaction (callers planning many small batches may gather them).
PLAN_ROWS_PER_TX = CHUNK * CHUNKS_PER_TX

#: What a claim reads back of each claimed row: the columns it does not set itself.
_CLAIMED = (
    LedgerEntry.key,
    LedgerEntry.payload,
    LedgerEntry.payload_hash,
    LedgerEntry.attempts,
    LedgerEntry.last_error,
    LedgerEntry.marketo_id,
    LedgerEntry.created_at,
    LedgerEntry.written_at,
)

__all__ = ["KINDS", "WRITE_ONCE_KINDS", "Ledger", "LedgerRow", "LedgerStatus", "PlanResult", "RowOutcome"]


class Ledger(LedgerReads):
    """Bulk operations over the ledger table; each call is one (or, for huge inputs, one per chunk) transaction.

    The reads of reports and the CLI (counts, failures, rows by key) are :class:`LedgerReads`.
    """

    # --------------------------------------------------------------------------------------------- plan

    def plan(self, account: str, run_id: str, entries: Iterable[tuple[str, str, dict[str, Any], str]]) -> PlanResult:
        """Upsert planned payloads; see the module doc for the life of a row.

        Works in chunks (a bulk SELECT of existing keys, then bulk INSERT/UPDATE), ``CHUNKS_PER_TX`` to a
        transaction, so 100k+ entries stream through; re-planning the same entries is a no-op, so a crash between
        transactions is safe.

        :param account: the account the rows belong to.
        :param run_id: the run planning them (stored on new and changed rows).
        :param entries: ``(key, kind, payload, payload_hash)``; within one chunk a repeated key keeps the last.
        :return: counts of new, changed and unchanged keys.
        """
        counts: Counter[str] = Counter()
        write_in_chunks(self._db, entries, lambda conn, chunk: self._plan_chunk(conn, account, run_id, chunk, counts))
        return PlanResult(**{name: counts[name] for name in ("new", "changed", "unchanged", "held", "kept")})

    def _plan_chunk(
        self,
        conn: Connection,
        account: str,
        run_id: str,
        chunk: list[tuple[str, str, dict[str, Any], str]],
        counts: Counter[str],
    ) -> None:
        """:meth:`plan` of one chunk, in the caller's transaction: a bulk SELECT of existing keys, then bulk
        INSERT/UPDATE; adds its decisions to ``counts``."""
        latest: dict[str, tuple[str, dict[str, Any], str]] = {}
        for key, kind, payload, payload_hash in chunk:
            if kind not in KINDS:
                raise ValueError(f"unknown ledger kind {kind!r} for {key!r}; use one of {sorted(KINDS)}")
            latest[key] = (kind, payload, payload_hash)
        now = utcnow()
        existing = {
            r.key: (r.payload_hash, r.status)
            for r in conn.execute(
                select(LedgerEntry.key, LedgerEntry.payload_hash, LedgerEntry.status).where(
                    LedgerEntry.key.in_(list(latest))
                )
            )
        }
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for key, (kind, payload, payload_hash) in latest.items():
            decision = decide(existing.get(key), kind, payload_hash)
            if decision == "new":
                inserts.append(
                    {
                        "key": key,
                        "account": account,
                        "kind": kind,
                        "payload": payload,
                        "payload_hash": payload_hash,
                        "status": LedgerStatus.PENDING.value,
                        "attempts": 0,
                        "run_id": run_id,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            elif decision == "changed":
                updates.append({"b_key": key, "b_payload": payload, "b_hash": payload_hash})
            else:
                counts["unchanged"] += 1
                if decision in ("held", "kept"):
                    counts[decision] += 1
        if inserts:
            # A concurrent planner may have inserted the same key since our SELECT: keep theirs.
            stmt = self._db.insert(LedgerEntry).on_conflict_do_nothing(index_elements=[LedgerEntry.key])
            execute_many(conn, stmt, inserts)
            counts["new"] += len(inserts)
        if updates:
            execute_many(
                conn,
                update(LedgerEntry)
                .where(LedgerEntry.key == bindparam("b_key"), LedgerEntry.status != LedgerStatus.IN_FLIGHT.value)
                .values(
                    payload=bindparam("b_payload", type_=LedgerEntry.payload.type),
                    payload_hash=bindparam("b_hash"),
                    status=LedgerStatus.PENDING.value,
                    attempts=0,
                    last_error=None,
                    run_id=run_id,
                    updated_at=now,
                ),
                updates,
            )
            counts["changed"] += len(updates)

    def preview(self, entries: Iterable[tuple[str, str, dict[str, Any], str]]) -> Iterator[tuple[str, str, str]]:
        """What :meth:`plan` would do with ``entries``, writing nothing: ``(key, kind, decision)`` per key
        (decisions as :func:`~airflow_provider_fbmkto.state.ledger_types.decide`); for dry runs."""
        for chunk in chunked(entries, CHUNK):
            latest = {key: (kind, payload_hash) for key, kind, _, payload_hash in chunk}
            with self._db.read_tx() as conn:
                existing = {
                    r.key: (r.payload_hash, r.status)
                    for r in conn.execute(
                        select(LedgerEntry.key, LedgerEntry.payload_hash, LedgerEntry.status).where(
                            LedgerEntry.key.in_(list(latest))
                        )
                    )
                }
            for key, (kind, payload_hash) in latest.items():
                yield key, kind, decide(existing.get(key), kind, payload_hash)

    def withdraw(
        self,
        account: str,
        run_id: str,
        keys: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        *,
        reason: str,
        dry_run: bool = False,
    ) -> int:
        """Withdraw activity rows that were never sent (pending, failed or skipped): their fact is gone.

        :param keys: exact keys.
        :param prefixes: key prefixes ending in ``:`` (``invoice_overdue:<acct>:<id>:``: every due date).
        :param reason: stored as the row's ``last_error`` (what an operator reads).
        :param dry_run: only count the rows that would be withdrawn.
        :return: rows withdrawn (or that would be).
        """
        prefixes = list(dict.fromkeys(prefixes))
        if any(not p.endswith(":") for p in prefixes):
            raise ValueError(f"withdraw prefixes must end with ':', got {prefixes!r}")
        conditions: list[Any] = [LedgerEntry.key.in_(chunk) for chunk in chunked(dict.fromkeys(keys), CHUNK)]
        # A prefix ending in ":" is the key range [prefix, prefix with ";" for the last ":"), on the primary key.
        conditions += [and_(LedgerEntry.key >= p, LedgerEntry.key < p[:-1] + ";") for p in prefixes]
        total = 0
        for part in chunked(conditions, 50):
            where = [
                LedgerEntry.account == account,
                LedgerEntry.kind == "activity",
                LedgerEntry.status.in_(sorted(WITHDRAWABLE)),
                or_(*part),
            ]
            if dry_run:
                with self._db.read_tx() as conn:
                    total += int(conn.execute(select(func.count()).select_from(LedgerEntry).where(*where)).scalar_one())
                continue
            with self._db.write_tx() as conn:
                total += conn.execute(
                    update(LedgerEntry)
                    .where(*where)
                    .values(
                        status=LedgerStatus.WITHDRAWN.value,
                        last_error=reason[:MAX_ERROR],
                        run_id=run_id,
                        updated_at=utcnow(),
                    )
                ).rowcount
        return total

    # -------------------------------------------------------------------------------------------- claim

    def claim(
        self,
        account: str,
        kind: str,
        *,
        limit: int,
        run_id: str,
        include_failed: bool = True,
        failed_before: datetime | None = None,
        max_attempts: int | None = None,
    ) -> list[LedgerRow]:
        """Atomically move up to ``limit`` pending (and failed) rows of ``kind`` to in_flight, ordered by key.

        Concurrent claimers never get the same row (SKIP LOCKED on PostgreSQL, the write lock on SQLite).

        :param limit: batch size (e.g. 300 for Marketo).
        :param run_id: the claiming run.
        :param include_failed: also retry rows that failed before.
        :param failed_before: only the failed rows marked before this instant (a load retries what failed in
            earlier runs, not what it has just failed itself, which would come straight back).
        :param max_attempts: leave rows that were already attempted this many times.
        :return: the claimed rows (with the new batch_id and attempts + 1).
        """
        return self.settle_and_claim(
            (),
            account,
            kind,
            limit=limit,
            run_id=run_id,
            include_failed=include_failed,
            failed_before=failed_before,
            max_attempts=max_attempts,
        )

    def settle_and_claim(
        self,
        outcomes: Iterable[RowOutcome],
        account: str,
        kind: str,
        *,
        limit: int,
        run_id: str,
        include_failed: bool = True,
        failed_before: datetime | None = None,
        max_attempts: int | None = None,
    ) -> list[LedgerRow]:
        """:meth:`mark` the ``outcomes`` and :meth:`claim` the next rows in one transaction.

        The loader's main loop records a finished batch and takes the next one with one write instead of two:
        on SQLite every write transaction queues behind the senders' own writes.
        """
        groups = _outcome_groups(outcomes)
        if limit <= 0 and not groups:
            return []
        mine = [LedgerEntry.account == account, LedgerEntry.kind == kind]
        if max_attempts is not None:
            mine.append(LedgerEntry.attempts < max_attempts)
        # One query per status, each walking the claim index in key order (an OR of statuses would scan):
        # earlier runs' failures first (the older facts), then pending rows.
        queries = []
        if include_failed:
            failed = [*mine, LedgerEntry.status == LedgerStatus.FAILED.value]
            if failed_before is not None:
                failed.append(LedgerEntry.updated_at < failed_before)
            queries.append(failed)
        queries.append([*mine, LedgerEntry.status == LedgerStatus.PENDING.value])
        where = [*mine, LedgerEntry.status.in_([LedgerStatus.PENDING.value, LedgerStatus.FAILED.value])]
        got: list[Any] = []
        with self._db.write_tx() as conn:
            if groups:
                _mark_in(conn, groups)
            now, batch_id = utcnow(), uuid.uuid4().hex
            for query in queries:
                if len(got) >= limit:
                    break
                # One statement per status: the keys picked are updated and returned at once. The pick is a CTE:
                # PostgreSQL may run an IN subquery once per row it tests, a LIMIT then limits nothing.
                picked = (
                    select(LedgerEntry.key)
                    .where(*query)
                    .order_by(LedgerEntry.key)
                    .limit(limit - len(got))
                    .with_for_update(skip_locked=True)
                    .cte("picked")
                )
                got += conn.execute(
                    update(LedgerEntry)
                    .add_cte(picked)
                    .where(LedgerEntry.key.in_(select(picked.c.key)), *where)
                    .values(
                        status=LedgerStatus.IN_FLIGHT.value,
                        batch_id=batch_id,
                        attempts=LedgerEntry.attempts + 1,
                        run_id=run_id,
                        updated_at=now,
                        sent_at=None,
                    )
                    .returning(*_CLAIMED)
                ).all()
        # The columns the claim just set are not read back (a third of a claim's time on SQLite): they are known.
        in_flight = LedgerStatus.IN_FLIGHT
        rows = (
            LedgerRow(
                key,
                account,
                kind,
                payload,
                payload_hash,
                in_flight,
                attempts,
                error,
                mid,
                run_id,
                created,
                now,
                written,
                batch_id,
                None,
            )
            for key, payload, payload_hash, attempts, error, mid, created, written in got
        )
        return sorted(rows, key=lambda row: row.key)

    # --------------------------------------------------------------------------------------------- mark

    def mark(self, results: Iterable[RowOutcome]) -> None:
        """Record outcomes in bulk, in one transaction.

        ``written`` sets ``written_at`` and clears ``last_error``; a given ``marketo_id`` is stored (an absent one
        keeps the previous id, e.g. a lead id).
        """
        groups = _outcome_groups(results)
        if not groups:
            return
        with self._db.write_tx() as conn:
            _mark_in(conn, groups)

    # -------------------------------------------------------------------------------------- maintenance

    def in_flight(self, account: str, kind: str | None = None) -> list[LedgerRow]:
        """Rows left in_flight (a crashed or interrupted send), ordered by key: resolve these before sending."""
        where = [LedgerEntry.account == account, LedgerEntry.status == LedgerStatus.IN_FLIGHT.value]
        if kind is not None:
            where.append(LedgerEntry.kind == kind)
        with self._db.read_tx() as conn:
            return [row_from_db(r) for r in conn.execute(select(*COLUMNS).where(*where).order_by(LedgerEntry.key))]

    def mark_sent(self, keys: Iterable[str]) -> None:
        """Record that the given in_flight rows go out to Marketo now (or that their send was given up now)."""
        now = utcnow()
        with self._db.write_tx() as conn:
            for chunk in chunked(keys, CHUNK):
                conn.execute(
                    update(LedgerEntry)
                    .where(LedgerEntry.key.in_(chunk), LedgerEntry.status == LedgerStatus.IN_FLIGHT.value)
                    .values(sent_at=now)
                )

    def reset_to_pending(self, keys: Iterable[str]) -> int:
        """Move the given rows back to pending (e.g. in_flight rows found not written). Returns rows changed."""
        total = 0
        now = utcnow()
        with self._db.write_tx() as conn:
            for chunk in chunked(keys, CHUNK):
                total += conn.execute(
                    update(LedgerEntry)
                    .where(LedgerEntry.key.in_(chunk), LedgerEntry.status != LedgerStatus.PENDING.value)
                    .values(status=LedgerStatus.PENDING.value, updated_at=now)
                ).rowcount
        return total

    def retry_failed(self, account: str, kind: str | None = None, *, include_skipped: bool = False) -> int:
        """Move failed rows back to pending with attempts reset (manual ``replay_failed``). Returns rows changed.

        :param include_skipped: also rows Marketo skipped (refused for a reason the user has since fixed,
            e.g. an unapproved activity type). Skipped rows were not written, so re-sending cannot duplicate.
            Their automatic retries (:mod:`~airflow_provider_fbmkto.state.skip_retries`) start again.
        """
        if include_skipped:
            self._db.skip_retries.forget(account, kind)
        statuses = [LedgerStatus.FAILED.value] + ([LedgerStatus.SKIPPED.value] if include_skipped else [])
        where = [LedgerEntry.account == account, LedgerEntry.status.in_(statuses)]
        if kind is not None:
            where.append(LedgerEntry.kind == kind)
        with self._db.write_tx() as conn:
            return conn.execute(
                update(LedgerEntry)
                .where(*where)
                .values(status=LedgerStatus.PENDING.value, attempts=0, updated_at=utcnow())
            ).rowcount


def _outcome_groups(results: Iterable[RowOutcome]) -> dict[LedgerStatus, list[dict[str, Any]]]:
    """Outcomes as update parameters, grouped by the status they set."""
    groups: dict[LedgerStatus, list[dict[str, Any]]] = {}
    for outcome in results:
        status = parse_status(outcome.status)
        if status is LedgerStatus.IN_FLIGHT:
            raise ValueError(f"mark() cannot set {outcome.key!r} in_flight; use claim()")
        error = outcome.error[:MAX_ERROR] if outcome.error else None
        marketo_id = None if outcome.marketo_id is None else str(outcome.marketo_id)
        groups.setdefault(status, []).append({"b_key": outcome.key, "b_mid": marketo_id, "b_error": error})
    return groups


def _mark_in(conn: Connection, groups: dict[LedgerStatus, list[dict[str, Any]]]) -> None:
    now = utcnow()
    for status, params in groups.items():
        values: dict[str, Any] = {
            "status": status.value,
            "marketo_id": func.coalesce(bindparam("b_mid", type_=LedgerEntry.marketo_id.type), LedgerEntry.marketo_id),
            "last_error": None if status is LedgerStatus.WRITTEN else bindparam("b_error"),
            "updated_at": now,
        }
        if status is LedgerStatus.WRITTEN:
            values["written_at"] = now
        for page in chunked(params, CHUNK):
            execute_many(conn, update(LedgerEntry).where(LedgerEntry.key == bindparam("b_key")).values(values), page)

"""Extract: FreshBooks records changed since the last pull, and pending webhook events, to staged JSONL.

XCom gets only the staging path and counts. Records are streamed page by page into the files, so memory
stays flat whatever the account's size.

FreshBooks does not promise that recording, changing or deleting a payment bumps the ``updated`` of the
invoice it pays, and the summaries read each invoice's own ``outstanding``/``date_paid`` (which also cover
credits and write-offs). So an incremental pull reads payments first, then the invoices changed in the window,
then **refreshes by id** the invoices those payments pay that the window did not bring (``search[invoiceids][]``,
100 a call): the mirror's invoices are current whether or not FreshBooks touched them. When it does touch them
they came with the window and the refresh costs no call; otherwise about one call per 100 paid invoices.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from airflow_provider_fbmkto.exceptions import ApiError, AuthError, QuotaExhausted, RateLimited, TransportError
from airflow_provider_fbmkto.sync.codec import Record, dumps_line
from airflow_provider_fbmkto.sync.records import Payment

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB
    from airflow_provider_fbmkto.state.events import WebhookEvent

#: Watermark: FreshBooks records are in the mirror up to this moment (their ``updated``).
PULLED_UNTIL = "freshbooks_pulled_until"
#: Re-read a little before the watermark: FreshBooks' clock and ours are not the same clock.
OVERLAP = timedelta(hours=1)
FILES = {"client": "clients.jsonl", "invoice": "invoices.jsonl", "payment": "payments.jsonl"}
#: FreshBooks pages in flight at once per listing: a page spends most of its time on the round trip, so
#: paging one after the other takes about 4x as long (measured by ``make bench``); memory stays a few pages.
PAGE_CONCURRENCY = 4
EVENTS_FILE = "events.jsonl"
#: Failed reads of a webhook event's record (across runs) before it is marked failed and no longer retried.
EVENT_ATTEMPTS = 3
log = logging.getLogger(__name__)


class _Refresh:
    """Invoices paid by the pulled payments that the window did not bring, re-read by id (current state)."""

    def __init__(self, fb: FreshBooksHook, paid: set[int], pulled: set[int]) -> None:
        self.fb, self.paid, self.pulled, self.count = fb, paid, pulled, 0

    def __iter__(self) -> Iterator[Record]:
        stale = sorted(self.paid - self.pulled)
        if stale:
            for invoice in self.fb.iter_invoices(invoice_ids=stale, include_deleted=True):
                self.count += 1
                yield invoice


def _noting(records: Iterator[Record], note: Callable[[int], None], enabled: bool) -> Iterator[Record]:
    """``records`` unchanged; with ``enabled``, each payment's invoice id (or each invoice's id) goes to ``note``."""
    for record in records:
        if enabled:
            note(record.invoiceid if isinstance(record, Payment) else record.id)
        yield record


def _stage(staging: StagingDir, kind: str, records: Iterable[Record], then: Iterable[Record] = ()) -> int:
    """Write ``records`` (and then ``then``) as JSON lines to the kind's staging file; returns how many."""
    n = 0
    with (staging / FILES[kind]).open("w") as out:
        for record in chain(records, then):
            out.write(dumps_line(record) + "\n")
            n += 1
    return n


class StagingDir(Protocol):
    """What we need of a staging folder: ``pathlib.Path`` and Airflow's ``ObjectStoragePath`` both fit."""

    def __truediv__(self, other: str) -> Any: ...
    def mkdir(self, *, parents: bool = ..., exist_ok: bool = ...) -> None: ...


def _unreadable(exc: ApiError) -> bool:
    """Whether ``exc`` is about the one record asked for (404, 422, a 5xx the hook's retries did not cure), not
    about the connection as a whole (authorization, rate limit, quota, network): those fail the task as before."""
    return not isinstance(exc, (AuthError, RateLimited, QuotaExhausted, TransportError))


def _stage_events(fb: FreshBooksHook, db: StateDB, ctx: RunContext, out: TextIO) -> list[int]:
    """Stage the account's pending webhook events (``invoice.sendByEmail`` with its invoice, read now); returns the
    ids of the events staged (consumed by map). An event whose record cannot be read stays pending for the next
    run, up to :data:`EVENT_ATTEMPTS` failed reads, then is marked failed (see :mod:`...state.events`); one that
    can never be read (another FreshBooks account's, a malformed id) is marked failed at once."""
    event_ids: list[int] = []
    for event in db.events.pending(ctx.name):
        problem, final = None, False
        if event.account_id != fb.account_id:
            problem = (
                f"the event is for FreshBooks account {event.account_id}, but connection "
                f"{ctx.account.freshbooks_conn_id!r} reads account {fb.account_id}"
            )
            final = True
        elif event.name == "invoice.sendByEmail":
            if not event.object_id.isdigit():
                problem, final = f"object_id {event.object_id!r} is not an invoice id", True
            else:
                try:
                    invoice = fb.get_invoice(int(event.object_id))
                except ApiError as exc:
                    if not _unreadable(exc):
                        raise
                    problem = str(exc)
                else:
                    line = {"event": event.name, "at": event.received_at.isoformat(), "invoice": dumps_line(invoice)}
                    out.write(json.dumps(line) + "\n")
        if problem is None:
            event_ids.append(event.id)
        else:
            _failed_read(db, ctx, event, problem, final)
    return event_ids


def _failed_read(db: StateDB, ctx: RunContext, event: WebhookEvent, problem: str, final: bool) -> None:
    what = f"webhook event {event.id} ({event.name} {event.object_id}, received {event.received_at:%Y-%m-%d %H:%M} UTC)"
    if ctx.dry_run:
        log.warning("fbmkto events: %s not staged (dry run, not counted): %s", what, problem)
        return
    failure = db.events.record_failure(event, problem, ctx.run_id, limit=EVENT_ATTEMPTS, give_up=final)
    if failure.failed:
        log.warning(
            "fbmkto events: %s marked failed after %d failed read(s), no run reads it again: %s",
            what,
            failure.attempts,
            problem,
        )
    else:
        log.warning(
            "fbmkto events: %s could not be read (attempt %d of %d), the next run tries again: %s",
            what,
            failure.attempts,
            EVENT_ATTEMPTS,
            problem,
        )


def extract(fb: FreshBooksHook, db: StateDB, ctx: RunContext, staging: StagingDir) -> dict[str, Any]:
    """Pull changed records and pending webhook events of ``ctx``'s account into ``staging``.

    :returns: ``{"staging", "counts", "pulled_until", "fb_account_id", "event_ids"}`` (JSON-ready); ``counts``
        per kind (``invoice`` includes the ``invoice_refreshed`` ones) and of ``events``.
    """
    last = db.watermarks.get(ctx.name, PULLED_UNTIL)
    since: datetime | None = None if (last is None or ctx.full_refresh) else last - OVERLAP
    until = ctx.now
    staging.mkdir(parents=True, exist_ok=True)
    fb.page_concurrency = max(fb.page_concurrency, PAGE_CONCURRENCY)
    counts: dict[str, int] = {}
    incremental = since is not None  # a full pull brings every invoice: nothing to refresh
    paid_invoices: set[int] = set()
    counts["client"] = _stage(staging, "client", fb.iter_clients(since, until, include_deleted=True))
    payments = fb.iter_payments(since, until, include_deleted=True)
    counts["payment"] = _stage(staging, "payment", _noting(payments, paid_invoices.add, incremental))
    pulled: set[int] = set()
    invoices = _noting(fb.iter_invoices(since, until, include_deleted=True), pulled.add, incremental)
    refresh = _Refresh(fb, paid_invoices, pulled)
    counts["invoice"] = _stage(staging, "invoice", invoices, then=refresh)
    counts["invoice_refreshed"] = refresh.count

    with (staging / EVENTS_FILE).open("w") as out:
        event_ids = _stage_events(fb, db, ctx, out) if ctx.account.webhooks else []
    if not ctx.dry_run:
        db.events.purge(ctx.name, datetime.now(timezone.utc) - timedelta(days=ctx.account.webhooks_retention_days))
    counts["events"] = len(event_ids)
    return {
        "staging": str(staging),
        "counts": counts,
        "pulled_until": until.isoformat(),
        "fb_account_id": fb.account_id,
        "event_ids": event_ids,
    }

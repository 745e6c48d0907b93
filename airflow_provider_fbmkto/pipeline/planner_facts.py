"""The activities one run plans, from the mirror: by date, by change, from webhook events (see ``sync/scope.py``).

* **by date**: the facts dated in the run's window and in the part of the account's scope the window adds,
  read along the mirror's date indexes ``DAYS_PER_CHUNK`` days at a time;
* **by change**: the facts of the records this run pulled (changed since the last pull) anywhere in the
  scope but outside the by-date spans -- late payments, drafts sent later, back-dated invoices; for a pulled
  client, the facts of all its invoices and payments (an e-mail added or changed makes them sendable);
* **events**: Invoice Sent from pending ``invoice.sendByEmail`` webhook events, dated at the event.

Each pass yields batches of at most ``RECORDS_PER_BATCH`` records' activities, each read with only the
clients, invoices and payments it needs, so memory stays flat. :meth:`FactPlanner.withdrawals` names the
activities whose record this run saw deleted (or back to draft): not to be sent if still pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_fbmkto.pipeline.extract import EVENTS_FILE, FILES
from airflow_provider_fbmkto.sync import jsontext
from airflow_provider_fbmkto.sync.activities import (
    invoice_sent_activities,
    overdue_activities,
    payment_activities,
    sent_event_activity,
)
from airflow_provider_fbmkto.sync.codec import Record, loads_line
from airflow_provider_fbmkto.sync.health import invoice_is_live, invoice_unpaid_at
from airflow_provider_fbmkto.sync.keys import invoice_overdue_prefix, invoice_sent_key, payment_received_key
from airflow_provider_fbmkto.sync.plan import MappingContext, Plan, PlannedActivity, Skipped
from airflow_provider_fbmkto.sync.records import Client, ClientContact, Invoice, Payment
from airflow_provider_fbmkto.sync.scope import Coverage
from airflow_provider_fbmkto.sync.window import Window, window_dates

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.pipeline.extract import StagingDir
    from airflow_provider_fbmkto.state.mirror import FreshBooksMirror

#: Days of a span read by one query while planning activities by date.
DAYS_PER_CHUNK = 7
#: FreshBooks records whose activities are planned (and held in memory) at once.
RECORDS_PER_BATCH = 1000
#: Clients (e-mail and deletion, about 0.2 kB each) the activity passes keep after reading them.
CLIENT_CACHE = 50_000
T = TypeVar("T")
_DAY = timedelta(days=1)


def _staged_lines(staging: StagingDir, kind: str) -> Iterator[str]:
    """The non-blank JSON lines extract staged for ``kind`` (none when it staged no file)."""
    path = staging / FILES[kind]
    if not path.exists():
        return
    with path.open("r") as lines:
        yield from (line for line in lines if line.strip())


def staged(staging: StagingDir, kind: str) -> Iterator[Record]:
    """The records of ``kind`` this run pulled, as staged by extract."""
    return (loads_line(line) for line in _staged_lines(staging, kind))


def staged_data(staging: StagingDir, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The records of ``kind`` this run pulled as ``(kind, to_json data)``, undecoded (for the mirror)."""
    for line in _staged_lines(staging, kind):
        obj = jsontext.loads(line)
        yield obj["kind"], obj["record"]


def _batches(records: Iterable[T]) -> Iterator[list[T]]:
    it = iter(records)
    while batch := list(islice(it, RECORDS_PER_BATCH)):
        yield batch


def _days(first: date, last: date) -> Iterator[tuple[date, date]]:
    """``[first, last]`` in inclusive spans of ``DAYS_PER_CHUNK`` days."""
    while first <= last:
        end = min(last, first + timedelta(days=DAYS_PER_CHUNK - 1))
        yield first, end
        first = end + _DAY


class FactPlanner:
    """The activity passes of one run.

    :param skip: receives every :class:`Skipped` (the tally keeps them for the report).
    """

    def __init__(
        self,
        mirror: FreshBooksMirror,
        ctx: RunContext,
        mctx: MappingContext,
        skip: Callable[[Iterable[Skipped]], None],
    ) -> None:
        self.mirror = mirror
        self.ctx = ctx
        self.mctx = mctx
        self.account = ctx.name
        self.skip = skip
        #: clients already read by an earlier batch of this run (the mirror does not change while planning);
        #: bounded: emptied when it reaches ``CLIENT_CACHE`` clients, so memory stays flat on large accounts
        self._clients: dict[int, ClientContact] = {}

    def _clients_by_ids(self, ids: Iterable[int]) -> dict[int, ClientContact]:
        """:meth:`FreshBooksMirror.client_contacts`, each client read from the mirror once while it is cached."""
        found: dict[int, ClientContact] = {}
        missing: list[int] = []
        for client_id in ids:
            client = self._clients.get(client_id)
            if client is None:
                missing.append(client_id)
            else:
                found[client_id] = client
        if missing:
            read = self.mirror.client_contacts(self.account, missing)
            if len(self._clients) + len(read) > CLIENT_CACHE:
                self._clients.clear()
            self._clients.update(read)
            found.update(read)
        return found

    def _planned(self, plan: Plan[PlannedActivity]) -> list[PlannedActivity]:
        self.skip(plan.skipped)
        return list(plan.items)

    # -- by date ---------------------------------------------------------------------------------------

    def by_date(self, spans: Iterable[Window]) -> Iterator[list[PlannedActivity]]:
        """The facts dated in ``spans`` (the window and what it added to the scope)."""
        for span in spans:
            yield from self._span(span)

    def _span(self, span: Window) -> Iterator[list[PlannedActivity]]:
        account, tz, mirror, end = self.account, self.ctx.account.tz, self.mirror, self.ctx.window.end
        dates = Coverage((span,), end=end, until=self.ctx.now)
        first, stop = window_dates(span, tz)
        due_first = first - _DAY  # overdue moment = start of the day after due_date

        def may_go_overdue(i: Invoice) -> bool:
            # Only live invoices still unpaid at the window's end can go overdue (overdue_activities checks
            # again); the others need neither their client nor their payments.
            return due_first <= i.due_date <= stop and invoice_is_live(i) and invoice_unpaid_at(i, end, tz)

        # Each invoice is read once: by create date (Invoice Sent, and Invoice Overdue if it falls due in the
        # span), or -- created outside the span -- by due date.
        for low, high in _days(first, stop):
            for created in _batches(mirror.invoices_created(account, low, high)):
                yield self._invoices(created, [i for i in created if may_go_overdue(i)], dates)
            for payments in _batches(mirror.payments_dated(account, low, high)):
                yield self._payments(payments, dates)
        for low, high in _days(due_first, stop):
            outside = mirror.invoices_due(account, low, high, created_outside=(first, stop))
            for due in _batches(i for i in outside if may_go_overdue(i)):
                yield self._invoices([], due, dates)

    def _payments(self, payments: list[Payment], dates: Coverage) -> list[PlannedActivity]:
        by_id = self._clients_by_ids({p.clientid for p in payments})
        paid = self.mirror.invoice_numbers(self.account, {p.invoiceid for p in payments})
        return self._planned(payment_activities(payments, by_id, paid, dates, self.mctx))

    def _invoices(self, sent: list[Invoice], overdue: list[Invoice], dates: Coverage) -> list[PlannedActivity]:
        """Invoice Sent of ``sent`` and Invoice Overdue of ``overdue`` in ``dates``."""
        by_id = self._clients_by_ids({i.customerid for i in sent} | {i.customerid for i in overdue})
        found = self._planned(invoice_sent_activities(sent, by_id, dates, self.mctx)) if sent else []
        if overdue:
            paid_back = self.mirror.payments_of_invoices(self.account, overdue)
            found += self._planned(overdue_activities(overdue, by_id, dates, self.mctx, payments=paid_back))
        return found

    # -- by change -------------------------------------------------------------------------------------

    def by_change(self, staging: StagingDir, dates: Coverage, *, clients: bool) -> Iterator[list[PlannedActivity]]:
        """The facts of the records this run pulled that fall in ``dates`` (the scope outside the by-date spans).

        :param clients: also the facts of every invoice and payment of the pulled clients (not needed when
            every record was pulled anyway).
        """
        for invoices in _batches(r for r in staged(staging, "invoice") if isinstance(r, Invoice)):
            yield self._invoices(invoices, invoices, dates)
        for payments in _batches(r for r in staged(staging, "payment") if isinstance(r, Payment)):
            yield self._payments(payments, dates)
        if not clients:
            return
        for group in _batches(r.id for r in staged(staging, "client") if isinstance(r, Client) and not r.is_deleted):
            invoices, payments = self.mirror.of_clients(self.account, group)
            for inv_batch in _batches(invoices):
                yield self._invoices(inv_batch, inv_batch, dates)
            for pay_batch in _batches(payments):
                yield self._payments(pay_batch, dates)

    def withdrawals(self, staging: StagingDir) -> Iterator[tuple[list[str], list[str]]]:
        """``(keys, prefixes)`` of the activities of pulled records that are deleted or drafts: they must not be
        sent if still unsent. A deleted client takes all its invoices' and payments' activities along."""
        acct = self.account

        def of_invoices(ids: list[int]) -> tuple[list[str], list[str]]:
            return [invoice_sent_key(acct, i) for i in ids], [invoice_overdue_prefix(acct, i) for i in ids]

        for invoices in _batches(r for r in staged(staging, "invoice") if isinstance(r, Invoice)):
            yield of_invoices([i.id for i in invoices if not invoice_is_live(i)])
        for payments in _batches(r for r in staged(staging, "payment") if isinstance(r, Payment)):
            yield [payment_received_key(acct, p.id) for p in payments if p.is_deleted], []
        for group in _batches(r.id for r in staged(staging, "client") if isinstance(r, Client) and r.is_deleted):
            invoices, payments = self.mirror.of_clients(acct, group)
            keys, prefixes = of_invoices([i.id for i in invoices])
            yield keys + [payment_received_key(acct, p.id) for p in payments], prefixes

    # -- events ----------------------------------------------------------------------------------------

    def from_events(self, staging: StagingDir) -> Iterator[list[PlannedActivity]]:
        """Invoice Sent from the pending ``invoice.sendByEmail`` events extract staged (dated at the event)."""
        events = staging / EVENTS_FILE
        if not events.exists():
            return
        sent: list[tuple[Invoice, datetime]] = []
        with events.open("r") as lines:
            for line in lines:
                if line.strip():
                    event = jsontext.loads(line)
                    invoice = loads_line(event["invoice"])
                    assert isinstance(invoice, Invoice)
                    sent.append((invoice, datetime.fromisoformat(event["at"])))
        by_id = self._clients_by_ids({invoice.customerid for invoice, _ in sent})
        items = []
        for invoice, at in sent:
            planned = sent_event_activity(invoice, at, by_id, self.mctx)
            if isinstance(planned, Skipped):
                self.skip([planned])
            else:
                items.append(planned)
        if items:
            yield items

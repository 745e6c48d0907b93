"""List membership in full calls: the loader's last step (see :mod:`~airflow_provider_fbmkto.pipeline.loader`).

A list ledger row says which static lists its lead joins and leaves; Marketo takes one list and one direction
per call, up to 300 leads. Sending each claimed batch of 300 rows on its own splits it into up to four part
calls (add to paid, add to overdue, remove from each), so the first full load spent about twice the calls
it needs. Here the claimed rows' operations are queued per (direction, list) and a call goes out when a queue
holds 300 (or when nothing is left to claim): every call is full except the last of each queue.

A row is written when all its operations are done (skipped with the reasons when Marketo refused one;
"not in list" on a removal is success). Membership changes are idempotent, so when a call fails the rows not
yet settled are marked failed and sent again by a later run; nothing is in doubt.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_fbmkto.exceptions import FbmktoError
from airflow_provider_fbmkto.pipeline.reasons import no_lead
from airflow_provider_fbmkto.state.budget import ShareExhausted
from airflow_provider_fbmkto.state.ledger import LedgerRow, LedgerStatus, RowOutcome

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.hooks.marketo_types import RecordResult
    from airflow_provider_fbmkto.pipeline.ownership import Split
    from airflow_provider_fbmkto.state.db import StateDB

log = logging.getLogger(__name__)

BATCH = 300
CAMPAIGN_BATCH = 100
#: Marketo codes on a removal that mean "nothing to remove": the goal (lead not in list) already holds.
LEAD_NOT_FOUND = "1004"
REMOVE_OK = frozenset({LEAD_NOT_FOUND, "1015"})

#: ``("add" | "remove", list id)``
Op = tuple[str, int]
#: ``(row key, lead id)``
Entry = tuple[str, int]


@dataclass
class _Open:
    """A claimed row whose operations are not all answered yet."""

    row: LedgerRow
    lead_id: int | None
    waiting: int = 0
    errors: list[str] = field(default_factory=list)


class ListMembershipSender:
    """Drain the account's pending list rows with full calls, up to ``concurrency`` calls at once.

    :param mkto: the Marketo hook.
    :param db: the state DB (ledger).
    :param account: the account.
    :param run_id: the run claiming the rows.
    :param lead_ids: e-mail → Marketo lead id for the given e-mails (the loader's lookup).
    :param reasons: Marketo's reasons of a refused record as text.
    :param sent: counter of ``list:<status>`` outcomes to update.
    :param concurrency: calls in flight at once.
    :param may_claim: asked before each claim; False stops claiming (the account's budget share is spent).
    :param screen: splits each claimed batch by who owns its e-mails (the loader's ownership gate); held rows are
        settled skipped with their reason, never sent.
    """

    def __init__(
        self,
        mkto: MarketoHook,
        db: StateDB,
        account: str,
        run_id: str,
        *,
        lead_ids: Callable[[Iterable[str]], dict[str, int]],
        reasons: Callable[[RecordResult], str],
        sent: Counter[str],
        concurrency: int,
        may_claim: Callable[[], bool] = lambda: True,
        screen: Callable[[list[LedgerRow]], Split] | None = None,
    ) -> None:
        self.mkto = mkto
        self.db = db
        self.account = account
        self.run_id = run_id
        self.lead_ids = lead_ids
        self.reasons = reasons
        self.sent = sent
        self.concurrency = max(1, concurrency)
        self.may_claim = may_claim
        self.screen = screen
        self.open: dict[str, _Open] = {}
        self.queues: dict[Op, list[Entry]] = defaultdict(list)
        self.campaigns: dict[int, list[Entry]] = defaultdict(list)
        self.settled: list[RowOutcome] = []
        #: E-mails whose remembered lead id Marketo no longer knows (``1004``: merged or deleted there).
        self.gone: set[str] = set()

    def run(self) -> None:
        failure: BaseException | None = None
        exhausted = False
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="fbmkto-load-list") as pool:
            in_flight: dict[Future[list[RecordResult]], tuple[Op, list[Entry]]] = {}
            while True:
                while failure is None and len(in_flight) < self.concurrency:
                    chunk = self._next_chunk(final=exhausted)
                    if chunk is not None:
                        in_flight[pool.submit(self._send, *chunk)] = chunk
                    elif exhausted:
                        break
                    elif not self._claim():
                        exhausted = True  # from now on partly filled queues go out too
                if failure is None and exhausted and not in_flight:
                    failure = self._flush_campaigns(final=True)
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    op, entries = in_flight.pop(future)
                    try:
                        results = future.result()
                    except FbmktoError as exc:
                        failure = failure or exc
                        continue
                    except BaseException as exc:  # unexpected: the open rows stay in_flight, resolved next run
                        failure = failure or exc
                        continue
                    self._settle(op, entries, results)
                if failure is None:
                    failure = self._flush_campaigns(final=False)
                self._mark()
        if failure is not None:
            if isinstance(failure, ShareExhausted):  # list changes are idempotent: the open rows simply wait
                self.db.ledger.reset_to_pending(list(self.open))
                self.open.clear()
            elif isinstance(failure, FbmktoError):
                self.settled += [RowOutcome(k, LedgerStatus.FAILED, None, str(failure)) for k in self.open]
                self.open.clear()
            self._mark()
            raise failure
        self._mark()

    # -- queues ----------------------------------------------------------------------------------------

    def _claim(self) -> bool:
        """Claim a batch of rows and queue their operations; False when none is pending (or may be claimed)."""
        if not self.may_claim():
            return False
        rows = self.db.ledger.claim(self.account, "list", limit=BATCH, run_id=self.run_id)
        if not rows:
            return False
        if self.screen is not None:
            split = self.screen(rows)
            self.settled += split.held
            rows = split.sendable
        ids = self.lead_ids(r.payload["email"] for r in rows) if rows else {}
        for r in rows:
            lead = ids.get(r.payload["email"])
            item = self.open[r.key] = _Open(r, lead)
            if lead is None:
                item.errors.append(no_lead(r.payload["email"], "its list membership waits for the person"))
                self._finish(item)
                continue
            ops = [("remove", int(i)) for i in r.payload["remove"]] + [("add", int(i)) for i in r.payload["add"]]
            item.waiting = len(ops)
            for op in ops:
                self.queues[op].append((r.key, lead))
            if not ops:
                self._ops_done(item)
        return True

    def _next_chunk(self, *, final: bool) -> tuple[Op, list[Entry]] | None:
        """A full chunk of some queue (any non-empty one when ``final``), removed from the queue."""
        for op, queue in sorted(self.queues.items()):
            if len(queue) >= BATCH or (final and queue):
                chunk, self.queues[op] = queue[:BATCH], queue[BATCH:]
                return op, chunk
        return None

    def _send(self, op: Op, entries: list[Entry]) -> list[RecordResult]:
        direction, list_id = op
        leads = [lead for _, lead in entries]
        if direction == "add":
            return self.mkto.add_to_list(list_id, leads)
        return self.mkto.remove_from_list(list_id, leads)

    # -- settling --------------------------------------------------------------------------------------

    def _settle(self, op: Op, entries: list[Entry], results: list[RecordResult]) -> None:
        direction, list_id = op
        for (key, _), res in zip(entries, results, strict=True):
            item = self.open[key]
            if not res.ok and any(x.code == LEAD_NOT_FOUND for x in res.reasons):
                self.gone.add(item.row.payload["email"])
            if direction == "remove" and not res.ok and not {x.code for x in res.reasons} <= REMOVE_OK:
                item.errors.append(f"remove from list {list_id}: {self.reasons(res)}")
            elif direction == "add" and not res.ok:
                item.errors.append(f"add to list {list_id}: {self.reasons(res)}")
            item.waiting -= 1
            if item.waiting == 0:
                self._ops_done(item)

    def _ops_done(self, item: _Open) -> None:
        """All list operations answered: request the row's campaigns (if it entered a segment cleanly)."""
        lead = item.lead_id
        campaigns = [] if item.errors or lead is None else [int(c) for c in item.row.payload["campaigns"]]
        if not campaigns or lead is None:
            self._finish(item)
            return
        item.waiting = len(campaigns)
        for campaign_id in campaigns:
            self.campaigns[campaign_id].append((item.row.key, lead))

    def _flush_campaigns(self, *, final: bool) -> BaseException | None:
        """Request queued campaigns (100 leads a call) once a queue is full, or all of them when ``final``."""
        for campaign_id, queue in list(self.campaigns.items()):
            while len(queue) >= CAMPAIGN_BATCH or (final and queue):
                chunk, queue = queue[:CAMPAIGN_BATCH], queue[CAMPAIGN_BATCH:]
                self.campaigns[campaign_id] = queue
                try:
                    self.mkto.trigger_campaign(campaign_id, [lead for _, lead in chunk])
                except FbmktoError as exc:
                    return exc
                for key, _ in chunk:
                    item = self.open[key]
                    item.waiting -= 1
                    if item.waiting == 0:
                        self._finish(item)
        return None

    def _finish(self, item: _Open) -> None:
        key = item.row.key
        del self.open[key]
        if item.errors:
            self.settled.append(RowOutcome(key, LedgerStatus.SKIPPED, None, "; ".join(item.errors)))
        else:
            self.settled.append(RowOutcome(key, LedgerStatus.WRITTEN))

    def _mark(self) -> None:
        if self.settled:
            self.db.ledger.mark(self.settled)
            self.sent.update(f"list:{o.status}" for o in self.settled)
            self.settled = []

"""Load: send pending ledger rows to Marketo -- companies, then leads, then activities, then list membership.

Each batch: claim ≤300 rows (pending → in_flight, atomically, so concurrent runs never send a row twice),
send one call, mark every row by Marketo's per-record answer (written / skipped with Marketo's reason).

**No duplicate, nothing lost.** Upserts of companies and leads and list membership changes are idempotent,
so a batch whose fate is unknown goes back to pending. Activities are not (Marketo has no idempotency key):
a batch whose answer was lost stays in_flight, the task fails, and the next attempt *resolves* in-flight
activities before sending anything: it reads the leads' activities back and marks each row written if
Marketo has it, pending if not. In-flight rows of another run are left alone while that run may still be
sending (younger than ``STALE_AFTER``); a retry of the same run resolves its own rows at once.

**Late writes.** Marketo may apply a write after the client gave up waiting for its answer. A row not found
by the read-back goes back to pending only if its batch never went out (``sent_at`` unset) or went out more
than twice the connection's ``request_timeout`` ago; otherwise the retry waits until then and reads the
batch back again, so a fast task retry cannot resend what Marketo is still applying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.exceptions import ApiError, FbmktoError, TransportError
from airflow_provider_fbmkto.pipeline.lists import ListMembershipSender
from airflow_provider_fbmkto.state.ledger import LedgerRow, LedgerStatus, RowOutcome
from airflow_provider_fbmkto.sync.keys import lead_key

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.hooks.marketo_types import RecordResult
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

log = logging.getLogger(__name__)

BATCH = 300
#: In-flight rows of another run younger than this may still be on their way; leave them to that run.
STALE_AFTER = timedelta(minutes=10)
WRITTEN, SKIPPED, FAILED, PENDING = (
    LedgerStatus.WRITTEN,
    LedgerStatus.SKIPPED,
    LedgerStatus.FAILED,
    LedgerStatus.PENDING,
)


def _reasons(result: RecordResult) -> str:
    return "; ".join(f"{r.code} {r.message}".strip() for r in result.reasons) or "skipped by Marketo (no reason given)"


def _outcome(row: LedgerRow, result: RecordResult) -> RowOutcome:
    if result.ok:
        return RowOutcome(row.key, WRITTEN, result.id)
    return RowOutcome(row.key, SKIPPED, None, _reasons(result))


class Loader:
    """One load of one account.

    :param mkto: the Marketo hook.
    :param db: the state DB (ledger).
    :param ctx: the run.
    :param now: clock for staleness (tests pass one).
    :param sleep: waits for a late write before reading in-doubt activities back again (tests record it).
    :param concurrency: batches in flight at once (default: the connection's ``max_concurrency``, 8). Marketo
        allows 10 calls at once and 100 per 20 s; one batch at a time leaves most of that unused, since each
        call spends its round trip waiting. The hook's limiter still paces every call.
    """

    def __init__(
        self,
        mkto: MarketoHook,
        db: StateDB,
        ctx: RunContext,
        *,
        now: Callable[[], datetime] | None = None,
        concurrency: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.mkto = mkto
        self.db = db
        self.ctx = ctx
        self.concurrency = max(1, concurrency if concurrency is not None else mkto.creds.max_concurrency)
        self.account = ctx.name
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.sleep = sleep
        #: How long after a send Marketo may still apply it: our whole wait for the answer, and as long again.
        self.late_write_window = timedelta(seconds=2 * mkto.creds.request_timeout)
        self.sent: Counter[str] = Counter()
        self.calls_before = mkto.http.stats.attempts
        self._type_ids: dict[str, int] | None = None
        self._lock = threading.Lock()  # senders run on several threads
        self.notes: list[str] = []
        self._crm_noted = False

    # -- public ----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Resolve in-doubt rows, then send every pending row; returns counts for the report."""
        if self.ctx.dry_run:
            return {"dry_run": True, "would_send": self._pending_counts()}
        if self.ctx.replay_failed:
            replayed = self.db.ledger.retry_failed(self.account, include_skipped=True)
            self.notes.append(f"replayed {replayed} skipped/failed rows")
        self.resolve_in_flight()
        self._drain("company", self._send_companies)
        self._drain("lead", self._send_leads)
        self._drain("activity", self._send_activities)
        ListMembershipSender(
            self.mkto,
            self.db,
            self.account,
            self.ctx.run_id,
            lead_ids=self._lead_ids,
            reasons=_reasons,
            sent=self.sent,
            concurrency=self.concurrency,
        ).run()
        return {
            "sent": dict(self.sent),
            "marketo_calls": self.mkto.http.stats.attempts - self.calls_before,
            "notes": self.notes,
        }

    def resolve_in_flight(self) -> dict[str, int]:
        """Settle rows a crashed send left in_flight (see the module docstring).

        Every in-flight activity is looked up in Marketo: one found there is written, whoever sent it. One
        not found goes back to pending only when it is this run's own (a retry after a crash) or stale;
        otherwise another run may be sending it right now, so it is left to that run.
        """
        rows = self.db.ledger.in_flight(self.account)
        if not rows:
            return {}
        cutoff = self.now() - STALE_AFTER
        settled = [r for r in rows if r.run_id == self.ctx.run_id or r.updated_at < cutoff]
        others = [r.key for r in settled if r.kind != "activity"]
        if others:
            self.db.ledger.reset_to_pending(others)
        activities = [r for r in rows if r.kind == "activity"]
        found = self._find_written(activities)
        settled_keys = {r.key for r in settled}
        found.update(self._await_late_writes([r for r in activities if r.key in settled_keys and r.key not in found]))
        outcomes = [RowOutcome(r.key, WRITTEN, found[r.key]) for r in activities if r.key in found]
        outcomes += [RowOutcome(r.key, PENDING) for r in activities if r.key not in found and r.key in settled_keys]
        self.db.ledger.mark(outcomes)
        counts = {
            "reset": len(others) + sum(1 for o in outcomes if o.status == PENDING),
            "confirmed_written": len(found),
            "left_to_their_run": len(rows)
            - len(settled)
            - sum(1 for r in activities if r.key in found and r.key not in settled_keys),
        }
        self.notes.append(f"resolved in-flight rows: {counts}")
        log.warning("resolved %s in-flight rows of %s: %s", len(rows), self.account, counts)
        return counts

    def _await_late_writes(self, missing: list[LedgerRow]) -> dict[str, int]:
        """Rows sent so recently that Marketo may still apply them: wait out the window, then read them back."""
        now = self.now()
        recent = [r for r in missing if r.sent_at is not None and r.sent_at + self.late_write_window > now]
        if not recent:
            return {}
        until = max(r.sent_at for r in recent if r.sent_at is not None) + self.late_write_window
        seconds = (until - now).total_seconds()
        log.warning(
            "%d in-doubt activities of %s went out less than %.0f s ago and are not in Marketo yet; waiting %.0f s "
            "for a late write before reading them back again",
            len(recent),
            self.account,
            self.late_write_window.total_seconds(),
            seconds,
        )
        self.notes.append(f"waited {seconds:.0f} s for late writes of {len(recent)} in-doubt activities")
        self.sleep(seconds)
        return self._find_written(recent)

    # -- batching --------------------------------------------------------------------------------------

    def _drain(self, kind: str, send: Callable[[list[LedgerRow]], list[RowOutcome]]) -> None:
        """Claim batches of ``kind`` and send up to ``concurrency`` of them at once until none is pending.

        Claims and marks stay on this thread; a failed batch stops further claims, the batches already in
        flight are settled, then the first error is raised (the failed batch is handled as before).
        """
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"fbmkto-load-{kind}") as pool:
            in_flight: dict[Future[list[RowOutcome]], list[LedgerRow]] = {}
            exhausted = False
            while True:
                while failure is None and not exhausted and len(in_flight) < self.concurrency:
                    rows = self.db.ledger.claim(self.account, kind, limit=BATCH, run_id=self.ctx.run_id)
                    if not rows:
                        exhausted = True
                        break
                    in_flight[pool.submit(send, rows)] = rows
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    rows = in_flight.pop(future)
                    try:
                        outcomes = future.result()
                    except TransportError as exc:
                        self._abort(kind, rows, exc, in_doubt=exc.sent)
                        failure = failure or exc
                        continue
                    except FbmktoError as exc:
                        self._abort(kind, rows, exc, in_doubt=_may_have_landed(exc))
                        failure = failure or exc
                        continue
                    except BaseException as exc:  # an unexpected error: its rows stay in_flight, resolved next run
                        failure = failure or exc
                        continue
                    self.db.ledger.mark(outcomes)
                    self.sent.update(f"{kind}:{o.status}" for o in outcomes)
        if failure is not None:
            raise failure

    def _abort(self, kind: str, rows: list[LedgerRow], exc: Exception, *, in_doubt: bool) -> None:
        """A batch call failed as a whole: give its rows back, unless activities may have been written."""
        if in_doubt and kind == "activity":
            log.error("%d activities are in doubt after %s; the next attempt reads them back", len(rows), exc)
            self.db.ledger.mark_sent(r.key for r in rows)  # late writes are counted from when we gave up
            return
        self.db.ledger.mark(RowOutcome(r.key, FAILED, None, str(exc)) for r in rows)

    def _pending_counts(self) -> dict[str, int]:
        counts = self.db.ledger.counts(self.account)
        return {kind: n for (kind, status), n in counts.items() if status in ("pending", "failed")}

    # -- senders ---------------------------------------------------------------------------------------

    def _send_companies(self, rows: list[LedgerRow]) -> list[RowOutcome]:
        results = self.mkto.upsert_companies([r.payload for r in rows])
        with self._lock:
            note = self.mkto.crm_synced and not self._crm_noted
            self._crm_noted = self._crm_noted or note
        if note:
            self.notes.append(
                "Marketo syncs companies with a CRM (1018): companies were skipped; "
                "the payment facts are on lead fields"
            )
        return [_outcome(r, res) for r, res in zip(rows, results, strict=True)]

    def _send_leads(self, rows: list[LedgerRow]) -> list[RowOutcome]:
        results = self.mkto.upsert_leads([r.payload for r in rows])
        return [_outcome(r, res) for r, res in zip(rows, results, strict=True)]

    def _lead_ids(self, emails: Iterable[str]) -> dict[str, int]:
        """Marketo lead id per e-mail: from the ledger's written lead rows, else read from Marketo."""
        wanted = sorted(set(emails))
        keys = {lead_key(self.account, e): e for e in wanted}
        ids = {keys[k]: int(v) for k, v in self.db.ledger.marketo_ids(keys).items() if v}
        missing = [e for e in wanted if e not in ids]
        if missing:
            for lead in self.mkto.get_leads_by_email(missing, ["id", "email"]):
                ids[str(lead["email"]).lower()] = int(lead["id"])
        return ids

    def _activity_type_ids(self) -> dict[str, int]:
        with self._lock:
            if self._type_ids is None:
                self._type_ids = self.mkto.activity_type_ids()
            return self._type_ids

    def _send_activities(self, rows: list[LedgerRow]) -> list[RowOutcome]:
        type_ids = self._activity_type_ids()
        lead_ids = self._lead_ids(r.payload["leadEmail"] for r in rows)
        outcomes: dict[str, RowOutcome] = {}
        sendable: list[tuple[LedgerRow, dict[str, Any]]] = []
        for r in rows:
            p = r.payload
            type_id = type_ids.get(p["activityType"])
            lead_id = lead_ids.get(p["leadEmail"])
            if type_id is None:
                outcomes[r.key] = RowOutcome(
                    r.key,
                    SKIPPED,
                    None,
                    f"Marketo has no approved activity type {p['activityType']!r}; run "
                    f"`fbmkto setup-marketo --conn-id {self.ctx.account.marketo_conn_id}`, then replay",
                )
            elif lead_id is None:
                outcomes[r.key] = RowOutcome(
                    r.key, FAILED, None, f"lead {p['leadEmail']} is not in Marketo (its lead write has not succeeded)"
                )
            else:
                sendable.append((r, _activity_input(p, lead_id, type_id)))
        if sendable:
            self.db.ledger.mark_sent(r.key for r, _ in sendable)  # from now on Marketo may have them
            results = self.mkto.add_activities([body for _, body in sendable])
            for (r, _), res in zip(sendable, results, strict=True):
                outcomes[r.key] = _outcome(r, res)
        return [outcomes[r.key] for r in rows]

    # -- in-doubt activities ---------------------------------------------------------------------------

    def _find_written(self, rows: Sequence[LedgerRow]) -> dict[str, int]:
        """Keys of in-flight activity rows Marketo already has (matched on lead, type, primary value, date)."""
        if not rows:
            return {}
        type_ids = self._activity_type_ids()
        lead_ids = self._lead_ids(r.payload["leadEmail"] for r in rows)
        wanted: dict[tuple[int, int, str, datetime], str] = {}
        for r in rows:
            p = r.payload
            lead_id, type_id = lead_ids.get(p["leadEmail"]), type_ids.get(p["activityType"])
            if lead_id is not None and type_id is not None:
                when = datetime.fromisoformat(p["activityDate"]).astimezone(timezone.utc)
                wanted[(lead_id, type_id, str(p["primaryAttributeValue"]), when)] = r.key
        if not wanted:
            return {}
        since = min(k[3] for k in wanted) - timedelta(seconds=1)
        found: dict[str, int] = {}
        types = sorted({k[1] for k in wanted})
        leads = sorted({k[0] for k in wanted})
        for act in self.mkto.iter_activities(since, types, leads):
            when = datetime.fromisoformat(str(act["activityDate"]).replace("Z", "+00:00")).astimezone(timezone.utc)
            key = wanted.get(
                (int(act["leadId"]), int(act["activityTypeId"]), str(act.get("primaryAttributeValue")), when)
            )
            if key is not None:
                found[key] = int(act.get("id") or 0)
        return found


#: Answers after which Marketo may have applied the write: server errors other than "unavailable", and
#: Marketo's timeout / system error / transient codes. 503 and rate-limit refusals never applied anything.
_IN_DOUBT_STATUS = frozenset({500, 502, 504})
_IN_DOUBT_CODES = frozenset({"604", "611", "713"})


def _may_have_landed(exc: Exception) -> bool:
    if isinstance(exc, TransportError):
        return exc.sent
    return isinstance(exc, ApiError) and (exc.status in _IN_DOUBT_STATUS or exc.code in _IN_DOUBT_CODES)


def _activity_input(payload: dict[str, Any], lead_id: int, type_id: int) -> dict[str, Any]:
    return {
        "leadId": lead_id,
        "activityDate": payload["activityDate"],
        "activityTypeId": type_id,
        "primaryAttributeValue": payload["primaryAttributeValue"],
        "attributes": [{"apiName": k, "value": v} for k, v in sorted(payload["attributes"].items())],
    }


def load(mkto: MarketoHook, db: StateDB, ctx: RunContext, *, concurrency: int | None = None) -> dict[str, Any]:
    """Send the account's pending ledger rows to Marketo (see :class:`Loader`)."""
    return Loader(mkto, db, ctx, concurrency=concurrency).run()

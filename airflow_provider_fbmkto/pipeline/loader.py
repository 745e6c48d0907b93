"""Load: send pending ledger rows to Marketo -- companies, then leads, then activities, then list membership.

Each batch: claim ≤300 rows (pending → in_flight, atomically, so concurrent runs never send a row twice),
send one call, mark every row by Marketo's per-record answer (written / skipped with Marketo's reason).

**No duplicate, nothing lost.** Upserts of companies and leads and list membership changes are idempotent,
so a batch whose fate is unknown goes back to pending. Activities are not (Marketo has no idempotency key): a
batch whose answer was lost stays in_flight, the task fails, and the next attempt resolves in-flight activities
by reading them back before sending anything (:mod:`~airflow_provider_fbmkto.pipeline.loader_in_doubt`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.exceptions import ApiError, FbmktoError, TransportError
from airflow_provider_fbmkto.pipeline.lists import ListMembershipSender
from airflow_provider_fbmkto.pipeline.loader_in_doubt import InDoubtResolution
from airflow_provider_fbmkto.pipeline.ownership import OwnershipGate
from airflow_provider_fbmkto.pipeline.reasons import heals_by_itself, no_activity_type, no_lead
from airflow_provider_fbmkto.state.budget import ShareExhausted
from airflow_provider_fbmkto.state.ledger import LedgerRow, LedgerStatus, RowOutcome
from airflow_provider_fbmkto.sync.keys import lead_key, list_key, parse_key
from airflow_provider_fbmkto.sync.ownership import COMPANY, LEAD, sharing_policy

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.hooks.marketo_types import RecordResult
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

log = logging.getLogger(__name__)

BATCH = 300
#: Calls one batch may need at most (activities: lead ids, the write, a look-up and a resend for merged people):
#: a new batch is claimed only while the account's share leaves this many per batch in flight.
CALLS_PER_BATCH = 4
#: Lead ids (e-mail → id, about 0.15 kB each) a load remembers once written or read; forgotten all at once beyond.
LEAD_ID_CACHE = 200_000
LEAD_NOT_FOUND = "1004"
WRITTEN, SKIPPED, FAILED, PENDING = (
    LedgerStatus.WRITTEN,
    LedgerStatus.SKIPPED,
    LedgerStatus.FAILED,
    LedgerStatus.PENDING,
)


def _reasons(result: RecordResult) -> str:
    return "; ".join(f"{r.code} {r.message}".strip() for r in result.reasons) or "skipped by Marketo (no reason given)"


def _lead_gone(result: RecordResult) -> bool:
    """Marketo skipped the record with ``1004``: no such person (never there, merged away or deleted)."""
    return not result.ok and any(r.code == LEAD_NOT_FOUND for r in result.reasons)


def _outcome(row: LedgerRow, result: RecordResult) -> RowOutcome:
    if result.ok:
        return RowOutcome(row.key, WRITTEN, result.id)
    return RowOutcome(row.key, SKIPPED, None, _reasons(result))


def _lead_outcomes(
    rows: list[LedgerRow], results: list[RecordResult], waits: Callable[[LedgerRow], str] | None
) -> list[RowOutcome]:
    """Outcomes of lead upserts; with ``waits`` (an ``updateOnly`` send) a person not in Marketo waits for it."""
    out = []
    for r, res in zip(rows, results, strict=True):
        if waits is not None and _lead_gone(res):  # updateOnly: this person is not in Marketo (yet)
            out.append(RowOutcome(r.key, SKIPPED, None, no_lead(str(r.payload.get("email")), waits(r))))
        else:
            out.append(_outcome(r, res))
    return out


class Loader(InDoubtResolution):
    """One load of one account.

    :param mkto: the Marketo hook.
    :param db: the state DB (ledger).
    :param ctx: the run.
    :param now: clock for staleness (tests pass one).
    :param sleep: waits for a late write before reading in-doubt activities back again (tests record it).
    :param type_ids: activity apiName → type id, when the caller read them already (the preflight does).
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
        type_ids: dict[str, int] | None = None,
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
        self._type_ids: dict[str, int] | None = type_ids
        self._lock = threading.Lock()  # senders run on several threads
        #: lead ids this load wrote or read (e-mail → id): a person's activities and list rows need no look-up
        self._known_leads: dict[str, int] = {}
        self.notes: list[str] = []
        self._crm_noted = False
        #: why the load stopped before sending everything (the account's daily budget share), else None
        self.stopped: str | None = None
        #: who owns the e-mails and company keys this load writes (held when another account does)
        self.gate = OwnershipGate(db, mkto.instance, ctx.name, ctx.run_id, sharing_policy(ctx.account))

    # -- public ----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Resolve in-doubt rows, then send every pending row; returns counts for the report."""
        if self.ctx.dry_run:
            return {"dry_run": True, "would_send": self._pending_counts()}
        if self.ctx.replay_failed:
            replayed = self.db.ledger.retry_failed(self.account, include_skipped=True)
            self.notes.append(f"replayed {replayed} skipped/failed rows")
        retried = self.db.skip_retries.requeue(self.account, heals_by_itself, limit=self.ctx.account.retry_skipped)
        if retried.requeued:
            self.notes.append(f"{retried.requeued} skipped rows whose cause may have gone away are tried again")
        if retried.exhausted:
            self.notes.append(
                f"{retried.exhausted} skipped rows used their {self.ctx.account.retry_skipped} automatic retries "
                f"(retry_skipped) and wait for a replay: fbmkto ledger replay --account {self.account}"
            )
        try:
            self.resolve_in_flight()
            self._drain("company", self._send_companies)
            self._drain("lead", self._send_leads)
            self._drain("activity", self._send_activities)
            gone = self._send_lists()
            survivors = self._relookup(gone)
            if survivors:  # a second pass for the rows of merged people, now with the surviving lead ids
                self.db.ledger.reset_to_pending(list_key(self.account, e) for e in survivors)
                self._send_lists()
        except ShareExhausted as exc:
            self.stopped = self.stopped or str(exc)
        if held := self.gate.note():
            self.notes.append(held)
        result: dict[str, Any] = {
            "sent": dict(self.sent),
            "marketo_calls": self.mkto.http.stats.attempts - self.calls_before,
            "notes": self.notes,
        }
        if self.stopped:
            result["stopped"] = share_stop(self.db, self.ctx, self.stopped)
        if self.gate.held:
            result["held"] = dict(self.gate.held)
        return result

    def _may_claim(self, in_flight: int) -> bool:
        """Whether the account's daily budget share leaves room for one more batch; records the stop if not."""
        if self.stopped:
            return False
        left = self.mkto.share_left()
        if left is None or left >= CALLS_PER_BATCH * (in_flight + 1):
            return True
        self.stopped = (
            f"account {self.account!r} reached its daily_budget_share ({self.ctx.account.daily_budget_share}) of "
            f"Marketo instance {self.mkto.instance}: {left} of its {self.mkto.share_limit} calls today are left, too "
            "few for another batch; the load stopped so the other accounts keep their share"
        )
        return False

    # -- batching --------------------------------------------------------------------------------------

    def _drain(self, kind: str, send: Callable[[list[LedgerRow]], list[RowOutcome]]) -> None:
        """Claim batches of ``kind`` and send up to ``concurrency`` of them at once until none is pending.

        Claims and marks stay on this thread, the finished batches' outcomes written with the next claim (one
        write transaction, not two); a failed batch stops further claims, the batches already in flight are
        settled, then the first error is raised (the failed batch is handled as before). Rows this load failed
        are not claimed again by it: the next run retries them.
        """
        failure: BaseException | None = None
        started = datetime.now(timezone.utc)  # the ledger's own clock (updated_at), not the injectable one
        settled: list[RowOutcome] = []
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"fbmkto-load-{kind}") as pool:
            in_flight: dict[Future[list[RowOutcome]], list[LedgerRow]] = {}
            exhausted = False
            while True:
                room = 0
                while failure is None and not exhausted and len(in_flight) + room < self.concurrency:
                    if not self._may_claim(len(in_flight) + room):
                        exhausted = True
                        break
                    room += 1
                # One claim per free slot, the finished batches' outcomes recorded with the first (one claim of
                # several batches at once cost ~10 MB more peak RSS at 100k records, for no speed).
                for slot in range(max(room, 1)):
                    rows = self.db.ledger.settle_and_claim(
                        settled if slot == 0 else (),
                        self.account,
                        kind,
                        limit=BATCH if room else 0,
                        run_id=self.ctx.run_id,
                        failed_before=started,
                    )
                    if rows:
                        in_flight[pool.submit(send, rows)] = rows
                    if room and len(rows) < BATCH:
                        exhausted = True
                        break
                settled = []
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    rows = in_flight.pop(future)
                    try:
                        outcomes = future.result()
                    except ShareExhausted as exc:  # the account's share is spent: stop cleanly, rows wait
                        self._abort(kind, rows, exc, in_doubt=kind == "activity", pending=True)
                        self.stopped = self.stopped or str(exc)
                        exhausted = True
                        continue
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
                    settled += outcomes
                    self.sent.update(f"{kind}:{o.status}" for o in outcomes)
        if failure is not None:
            raise failure

    def _abort(
        self, kind: str, rows: list[LedgerRow], exc: Exception, *, in_doubt: bool, pending: bool = False
    ) -> None:
        """A batch call failed as a whole: give its rows back (failed, or ``pending`` untouched), unless activities
        may have been written (a budget stop inside a batch: an earlier call of it may have written some)."""
        if in_doubt and kind == "activity":
            log.error("%d activities are in doubt after %s; the next attempt reads them back", len(rows), exc)
            self.db.ledger.mark_sent(r.key for r in rows)  # late writes are counted from when we gave up
            return
        if pending:
            self.db.ledger.reset_to_pending(r.key for r in rows)
            return
        self.db.ledger.mark(RowOutcome(r.key, FAILED, None, str(exc)) for r in rows)

    def _pending_counts(self) -> dict[str, int]:
        counts = self.db.ledger.counts(self.account)
        return {kind: n for (kind, status), n in counts.items() if status in ("pending", "failed")}

    # -- senders ---------------------------------------------------------------------------------------

    def _send_companies(self, rows: list[LedgerRow]) -> list[RowOutcome]:
        split = self.gate.split(COMPANY, rows, lambda r: parse_key(r.key).rest, "company")
        rows = split.sendable  # a shared company is written by both accounts (createOrUpdate by externalCompanyId)
        if not rows:
            return split.held
        results = self.mkto.upsert_companies([r.payload for r in rows])
        with self._lock:
            note = self.mkto.crm_synced and not self._crm_noted
            self._crm_noted = self._crm_noted or note
        if note:
            self.notes.append(
                "Marketo syncs companies with a CRM (1018): companies were skipped; "
                "the payment facts are on lead fields"
            )
        return split.held + [_outcome(r, res) for r, res in zip(rows, results, strict=True)]

    def _send_leads(self, rows: list[LedgerRow]) -> list[RowOutcome]:
        policy = self.ctx.account.marketo.leads
        split = self.gate.split(LEAD, rows, lambda r: parse_key(r.key).rest, "lead")
        outcomes = split.held
        if split.own:
            results = self.mkto.upsert_leads(
                [r.payload for r in split.own], create=policy.create, partition=policy.partition
            )
            update_only = (
                "the account is update-only (marketo.leads.create: false); it goes through once the person exists"
            )
            outcomes += _lead_outcomes(split.own, results, None if policy.create else lambda _: update_only)
            self._remember_leads(split.own, results)
        if split.shared:  # another account owns these people and creates them: this account only updates them
            results = self.mkto.upsert_leads([r.payload for r in split.shared], create=False)
            outcomes += _lead_outcomes(
                split.shared,
                results,
                lambda r: (
                    f"account {split.owners[r.key]!r} owns this e-mail and creates the person; this account "
                    "shares it (marketo.leads.shared) and only updates it, once it exists"
                ),
            )
            self._remember_leads(split.shared, results)
        return outcomes

    def _remember_leads(self, rows: list[LedgerRow], results: list[RecordResult]) -> None:
        """Keep the ids of the leads Marketo just wrote, by their rows' lead keys' e-mails."""
        self._know(
            {parse_key(r.key).rest: int(res.id) for r, res in zip(rows, results, strict=True) if res.ok and res.id}
        )

    def _know(self, ids: dict[str, int]) -> None:
        with self._lock:
            if len(self._known_leads) + len(ids) > LEAD_ID_CACHE:
                self._known_leads.clear()
            self._known_leads.update(ids)

    def _lead_ids(self, emails: Iterable[str]) -> dict[str, int]:
        """Marketo lead id per e-mail: known to this load, else from the ledger's written lead rows, else read
        from Marketo."""
        wanted = set(emails)
        with self._lock:
            known = self._known_leads
            ids = {e: i for e in wanted if (i := known.get(e)) is not None}
        unknown = sorted(wanted - ids.keys())
        if not unknown:
            return ids
        keys = {lead_key(self.account, e): e for e in unknown}
        found = {keys[k]: int(v) for k, v in self.db.ledger.marketo_ids(keys).items() if v}
        missing = [e for e in unknown if e not in found]
        if missing:
            for lead in self.mkto.get_leads_by_email(missing, ["id", "email"]):
                found[str(lead["email"]).lower()] = int(lead["id"])
        self._know(found)
        return ids | found

    def _activity_type_ids(self) -> dict[str, int]:
        with self._lock:
            if self._type_ids is None:
                self._type_ids = self.mkto.activity_type_ids()
            return self._type_ids

    def _send_activities(self, rows: list[LedgerRow]) -> list[RowOutcome]:
        split = self.gate.split(LEAD, rows, lambda r: str(r.payload["leadEmail"]), "activity on lead")
        outcomes: dict[str, RowOutcome] = {o.key: o for o in split.held}
        if not split.sendable:
            return split.held
        everyone, rows = rows, split.sendable
        type_ids = self._activity_type_ids()
        lead_ids = self._lead_ids(r.payload["leadEmail"] for r in rows)
        sendable: list[tuple[LedgerRow, dict[str, Any]]] = []
        for r in rows:
            p = r.payload
            type_id = type_ids.get(p["activityType"])
            lead_id = lead_ids.get(p["leadEmail"])
            if type_id is None:
                reason = no_activity_type(p["activityType"], self.ctx.account.marketo_conn_id)
                outcomes[r.key] = RowOutcome(r.key, SKIPPED, None, reason)
            elif lead_id is None:
                outcomes[r.key] = self._no_lead(r.key, p["leadEmail"])
            else:
                sendable.append((r, _activity_input(p, lead_id, type_id)))
        if sendable:
            self.db.ledger.mark_sent(r.key for r, _ in sendable)  # from now on Marketo may have them
            results = self.mkto.add_activities([body for _, body in sendable])
            gone = [(r, body) for (r, body), res in zip(sendable, results, strict=True) if _lead_gone(res)]
            for (r, _), res in zip(sendable, results, strict=True):
                outcomes[r.key] = _outcome(r, res)
            outcomes.update(self._resend_to_survivors(gone))
        return [outcomes[r.key] for r in everyone]

    def _send_lists(self) -> set[str]:
        """Send the pending list rows; the e-mails whose remembered lead Marketo no longer knows (1004)."""
        sender = ListMembershipSender(
            self.mkto,
            self.db,
            self.account,
            self.ctx.run_id,
            lead_ids=self._lead_ids,
            reasons=_reasons,
            sent=self.sent,
            concurrency=self.concurrency,
            may_claim=lambda: self._may_claim(self.concurrency - 1),
            screen=lambda rows: self.gate.split(LEAD, rows, lambda r: str(r.payload["email"]), "list membership of"),
        )
        sender.run()
        return sender.gone

    def _relookup(self, emails: Iterable[str]) -> dict[str, int]:
        """Look up once more the people Marketo answered ``1004`` for (merged or deleted there).

        A surviving person (a merge keeps one of the two, and may keep the e-mail) becomes the remembered lead;
        a person gone for good is created again by the next run (its lead row back to pending), unless the
        account is update-only. Returns e-mail → surviving lead id.
        """
        wanted = sorted(set(emails))
        if not wanted:
            return {}
        found = {str(x["email"]).lower(): int(x["id"]) for x in self.mkto.get_leads_by_email(wanted, ["id", "email"])}
        remembered = self.db.ledger.marketo_ids(lead_key(self.account, e) for e in found)  # written lead rows
        moved = {lead_key(self.account, e): i for e, i in found.items()}
        self.db.ledger.mark(RowOutcome(k, WRITTEN, i) for k, i in moved.items() if k in remembered)
        lost = [e for e in wanted if e not in found]
        with self._lock:  # the survivors replace the merged people; the deleted are no longer known
            for e in lost:
                self._known_leads.pop(e, None)
        self._know(found)
        if lost and self.ctx.account.marketo.leads.create:
            self.db.ledger.reset_to_pending(lead_key(self.account, e) for e in lost)
        self.notes.append(f"people gone from Marketo (1004): {len(found)} merged into a survivor, {len(lost)} deleted")
        return found

    def _no_lead(self, key: str, email: str) -> RowOutcome:
        """The outcome of a row whose person is not in Marketo: it waits (update only) or fails (retried)."""
        if not self.ctx.account.marketo.leads.create:
            return RowOutcome(key, SKIPPED, None, no_lead(email, "the account is update-only; waiting for the person"))
        return RowOutcome(key, FAILED, None, f"lead {email} is not in Marketo (its lead write has not succeeded)")

    def _resend_to_survivors(self, gone: list[tuple[LedgerRow, dict[str, Any]]]) -> dict[str, RowOutcome]:
        """Activities Marketo refused with ``1004`` for a remembered lead: sent once more to the surviving person
        (see :meth:`_relookup`); those of a person gone for good wait for it (update only) or fail (retried)."""
        found = self._relookup(r.payload["leadEmail"] for r, _ in gone)
        survivors = [(r, {**body, "leadId": found[e]}) for r, body in gone if (e := r.payload["leadEmail"]) in found]
        outcomes = {r.key: self._no_lead(r.key, r.payload["leadEmail"]) for r, _ in gone}
        if survivors:
            results = self.mkto.add_activities([body for _, body in survivors])
            outcomes.update({r.key: _outcome(r, res) for (r, _), res in zip(survivors, results, strict=True)})
        return outcomes


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


def share_stop(db: StateDB, ctx: RunContext, why: str) -> dict[str, Any]:
    """What the report says about a load that stopped for the account's ``daily_budget_share``."""
    counts = db.ledger.counts(ctx.name)
    waiting = sum(n for (_kind, status), n in counts.items() if status in ("pending", "failed", "in_flight"))
    return {"reason": "daily_budget_share", "message": why, "rows_waiting": waiting}


def load(
    mkto: MarketoHook,
    db: StateDB,
    ctx: RunContext,
    *,
    concurrency: int | None = None,
    type_ids: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Send the account's pending ledger rows to Marketo (see :class:`Loader`)."""
    return Loader(mkto, db, ctx, concurrency=concurrency, type_ids=type_ids).run()

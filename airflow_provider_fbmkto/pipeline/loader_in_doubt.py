"""Activities whose send may have reached Marketo: read them back before anything is sent again.

A mixin of :class:`~airflow_provider_fbmkto.pipeline.loader.Loader` (the load's one seam that only reads).

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
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from airflow_provider_fbmkto.state.ledger import LedgerRow, LedgerStatus, RowOutcome

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

log = logging.getLogger(__name__)

#: In-flight rows of another run younger than this may still be on their way; leave them to that run.
STALE_AFTER = timedelta(minutes=10)
WRITTEN, PENDING = LedgerStatus.WRITTEN, LedgerStatus.PENDING


class InDoubtResolution:
    """Settling in-flight rows; the loader provides the attributes and the two lookups below."""

    mkto: MarketoHook
    db: StateDB
    ctx: RunContext
    account: str
    now: Callable[[], datetime]
    sleep: Callable[[float], None]
    late_write_window: timedelta
    notes: list[str]

    def _lead_ids(self, emails: Iterable[str]) -> dict[str, int]:
        raise NotImplementedError

    def _activity_type_ids(self) -> dict[str, int]:
        raise NotImplementedError

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

"""Call accounting from the emulators' request logs: calls, records and the minimum calls per kind.

The minimum is what the API's batch sizes allow: ⌈n/300⌉ Marketo calls for n records of one kind (per list
and direction for list membership, ⌈n/100⌉ per campaign request), ⌈n/100⌉ FreshBooks pages for n records
of one kind (at least one call per kind: an empty answer is an answer). Minima add up per run -- a batch
cannot span two runs. Kinds without a record count (token, metadata, bulk export) have no minimum and are
reported beside the judged ones.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MARKETO_BATCH, CAMPAIGN_BATCH, FRESHBOOKS_PAGE = 300, 100, 100
#: Marketo kinds whose calls carry records and so have a minimum (writes, then reads by filter).
WRITE_KINDS = ("company", "lead", "activity", "list", "campaign")
READ_KINDS = ("lead_read", "activity_read")
FRESHBOOKS_KINDS = ("client", "invoice", "payment")
_LIST = re.compile(r"^/rest/v1/lists/(\d+)/leads\.json$")
_CAMPAIGN = re.compile(r"^/rest/v1/campaigns/(\d+)/trigger\.json$")


def _inputs(body: Any) -> int:
    if isinstance(body, Mapping):
        value = body.get("input")
        if isinstance(value, list):
            return len(value)
        if isinstance(value, Mapping) and isinstance(value.get("leads"), list):
            return len(value["leads"])
    return 0


def marketo_kind(call: Any) -> tuple[str, str | None, int]:
    """``(kind, batch group, records)`` of one Marketo call (group None: not judged against a minimum)."""
    path, method = call.path, (call.effective_method or call.method)
    if path.startswith("/identity/"):
        return "token", None, 0
    if path == "/rest/v1/companies.json" and method == "POST":
        if isinstance(call.body, dict) and call.body.get("action") == "updateOnly":
            return "metadata", None, 0  # the weekly "are companies writable?" probe (one record, no company)
        return "company", "company", _inputs(call.body)
    if path == "/rest/v1/leads.json":
        if method == "GET":
            values = str(call.query.get("filterValues", ""))
            return "lead_read", "lead_read", len([v for v in values.split(",") if v])
        return "lead", "lead", _inputs(call.body)
    if path == "/rest/v1/activities/external.json":
        return "activity", "activity", _inputs(call.body)
    found = _LIST.match(path)
    if found and method in ("POST", "DELETE"):
        return "list", f"list:{method}:{found.group(1)}", _inputs(call.body)
    found = _CAMPAIGN.match(path)
    if found:
        return "campaign", f"campaign:{found.group(1)}", _inputs(call.body)
    if path.startswith("/bulk/"):
        return "bulk_export", None, 0
    if path in ("/rest/v1/activities.json", "/rest/v1/activities/pagingtoken.json"):
        return "activity_read", None, 0
    if path == "/rest/v1/activities/leadchanges.json":
        return "lead_changes", None, 0  # reconcile's change feed: as many pages as changes, no minimum
    if path == "/rest/v1/companies.json":
        return "company_read", None, 0  # reconcile's read-back of company names (GET)
    return "metadata", None, 0


def freshbooks_kind(call: Any) -> str:
    path = call.path
    for kind, marker in (("client", "/users/clients"), ("invoice", "/invoices/invoices"), ("payment", "/payments/")):
        if marker in path:
            return kind
    if path.startswith("/auth/oauth/token"):
        return "token"
    if path.startswith("/auth/api/"):
        return "identity"
    return "other"


@dataclass
class CallTally:
    """Calls, records and minimum calls per kind (for one API); add tallies of runs with ``+=``."""

    calls: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    minimum: Counter[str] = field(default_factory=Counter)
    rejected: int = 0

    def __iadd__(self, other: CallTally) -> CallTally:
        self.calls.update(other.calls)
        self.records.update(other.records)
        self.minimum.update(other.minimum)
        self.rejected += other.rejected
        return self

    def total(self, kinds: Iterable[str]) -> tuple[int, int]:
        """``(calls, minimum)`` summed over ``kinds``."""
        kinds = list(kinds)
        return sum(self.calls[k] for k in kinds), sum(self.minimum[k] for k in kinds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "records": dict(sorted(self.records.items())),
            "minimum_calls": dict(sorted(self.minimum.items())),
            "rejected_calls": self.rejected,
        }


def tally_marketo(calls: Iterable[Any]) -> CallTally:
    """Tally Marketo calls of one run (the minimum is per batch group: kind, list and direction, campaign)."""
    tally = CallTally()
    group_records: Counter[str] = Counter()
    group_kind: dict[str, str] = {}
    for call in calls:
        kind, group, n = marketo_kind(call)
        tally.calls[kind] += 1
        if call.status != 200 or set(call.codes) & {"606", "615", "607"}:
            tally.rejected += 1
            continue
        tally.records[kind] += n
        if group is not None:
            group_records[group] += n
            group_kind[group] = kind
    for group, n in group_records.items():
        size = CAMPAIGN_BATCH if group.startswith("campaign:") else MARKETO_BATCH
        tally.minimum[group_kind[group]] += math.ceil(n / size)
    return tally


def tally_freshbooks(calls: Iterable[Any], records: Mapping[str, int]) -> CallTally:
    """Tally FreshBooks calls of one run; ``records`` are the extract's counts per kind."""
    tally = CallTally()
    for call in calls:
        kind = freshbooks_kind(call)
        tally.calls[kind] += 1
        if kind == "invoice" and "search[invoiceids][]" in (call.query or {}):
            tally.calls["invoice_by_id"] += 1  # of the invoice calls: extract's refresh of paid invoices
        if call.status != 200:
            tally.rejected += 1
    for kind in FRESHBOOKS_KINDS:
        n = int(records.get(kind, 0))
        tally.records[kind] += n
        tally.minimum[kind] += max(1, math.ceil(n / FRESHBOOKS_PAGE))
    return tally


def ratio(actual: float, minimum: float) -> float | None:
    return round(actual / minimum, 4) if minimum else None


def floor_seconds(min_calls: int, rate_limit: int = 100, window_seconds: float = 20.0) -> float:
    """Marketo's rate-limit floor in emulated seconds: minimum calls ÷ (``rate_limit`` per ``window_seconds``)."""
    return min_calls * window_seconds / rate_limit

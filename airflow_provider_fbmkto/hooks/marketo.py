"""MarketoHook: the Marketo REST API behind Marketo's limits, with per-record results.

Connection (type ``marketo``): host = REST base URL (``https://<munchkin>.mktorest.com``), login = client id,
password = client secret; extras (plain or ``extra__marketo__``-prefixed) ``calls_per_window`` (97),
``window_seconds`` (20), ``max_concurrency`` (8), ``daily_budget`` (45000), ``budget_reserve`` (0),
``request_timeout`` (60). Any other extra is an error naming it.

Every call goes through the one retry layer, :class:`~airflow_provider_fbmkto.http.HttpClient`, with

* a **guard** held around each attempt: the instance's shared :class:`MarketoRateLimiter` slot (sliding
  window and concurrency) and one call of the daily budget, spent in the state DB so every process and account
  writing into the instance shares it (calls Marketo does not count, 601/602/604/605/608/611, are refunded);
* a **classifier** that reads Marketo's envelope: 606/615/429 wait for the rate window, 604/608/611/713/719
  (lock wait timeout)/5xx back off, 1029 "Too many jobs in queue" waits a minute, 601/602 fetch a new token and
  resend once, and 607 raises :class:`QuotaExhausted` at once and stops this process from sending to the
  instance until the reset. Final answers raise typed errors: 1029 "Export daily quota exceeded"
  :class:`ExportQuotaExhausted`, 1029 "Job already queued" :class:`ExportAlreadyQueued` (which
  :meth:`MarketoHook.enqueue_export` turns into reusing the job), 614 :class:`InvalidSubscription` (the
  connection's host names no Marketo subscription; not retried).

All waits scale with ``window_seconds / 20``, so an emulator with a shortened window runs in shortened time.

**Concurrency across workers.** The limiter is per process. To keep Marketo's 10-calls-in-flight limit across
Celery workers, run every task that uses one instance in an Airflow pool of 8 slots, e.g.
``airflow pools set marketo_123-abc-456 8 "Marketo instance 123-ABC-456"`` and ``pool="marketo_123-abc-456"``
on those tasks. A pool counts tasks, not calls: a task calling the hook from one thread has one call in flight,
so 8 slots mean at most 8 calls; a task calling from N threads should take ``pool_slots=N``. The 20-second
window is per process as well: processes together can pass 100 calls per 20 s, and Marketo then answers 606,
which every hook of the process waits out and retries; lower ``calls_per_window`` (97 / concurrent processes)
to avoid that. The daily budget is shared by all processes already (state DB).

**CRM-synced instances.** With a Salesforce/Dynamics sync, companies are read-only (``1018``, at response or
record level). :meth:`MarketoHook.upsert_companies` then marks the records ``skipped`` with reason ``1018``,
sends no further batches and sets ``hook.crm_synced = True`` so the pipeline can degrade to lead fields;
pass ``raise_if_crm_synced=True`` to get :class:`CrmSyncedCompanies` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_fbmkto.exceptions import ApiError, FbmktoError, TransportError
from airflow_provider_fbmkto.hooks.marketo_auth import TOKENS
from airflow_provider_fbmkto.hooks.marketo_base import BatchCallback
from airflow_provider_fbmkto.hooks.marketo_bulk import MarketoBulkExportMixin
from airflow_provider_fbmkto.hooks.marketo_limits import ApiUsage
from airflow_provider_fbmkto.hooks.marketo_types import (
    CRM_SYNCED_CODE,
    MAX_RECORDS,
    OBJECT_NOT_FOUND_CODE,
    CrmSyncedCompanies,
    RecordResult,
    dumps,
    export_windows,
    fields_of,
    first_result,
)
from airflow_provider_fbmkto.http import RetryPolicy

__all__ = ["ApiUsage", "MarketoHook", "RecordResult", "export_windows"]


class MarketoHook(MarketoBulkExportMixin):
    """Marketo REST API client for Airflow tasks, the CLI and users' own code.

    Writes return one :class:`RecordResult` per input record, sorted by input position; reads yield dicts.

    :param marketo_conn_id: the ``marketo`` connection.
    :param state_conn_id: connection of the state DB that holds the shared daily call budget.
    """

    # -- leads ------------------------------------------------------------------------------------------

    def upsert_leads(
        self,
        leads: Iterable[Mapping[str, Any]],
        lookup_field: str = "email",
        *,
        create: bool = True,
        partition: str | None = None,
        on_batch: BatchCallback | None = None,
    ) -> list[RecordResult]:
        """Create or update leads (by ``lookup_field``); one :class:`RecordResult` per input, in input order.

        :param create: ``False`` sends ``updateOnly``: people not in Marketo come back skipped (``1004``), none is
            created (for instances licensed by database size).
        :param partition: lead partition (``partitionName``) new leads are created in.
        :param on_batch: called with each batch's results as soon as Marketo answered them.
        """
        head: dict[str, Any] = {"action": "createOrUpdate" if create else "updateOnly", "lookupField": lookup_field}
        if partition and create:
            head["partitionName"] = partition
        return self._write(
            "POST",
            "/rest/v1/leads.json",
            leads,
            lambda chunk: {**head, "input": chunk},
            on_batch=on_batch,
            idempotent=True,  # createOrUpdate with the same values leaves the same state
        )

    def usage_today(self) -> ApiUsage:
        """Marketo's count of today's API calls (``GET /rest/v1/stats/usage.json``), every integration together.

        The daily quota (50,000 by default) is the instance's, shared by every API user; this is where the calls
        of other integrations show. :attr:`ApiUsage.mine` is this connection's API user (the identity answer's
        ``scope``) when Marketo lists it. See :func:`~.marketo_limits.calls_left_today`.
        """
        body = self._call("GET", "/rest/v1/stats/usage.json")
        entry = TOKENS.get(self._token_key)
        return ApiUsage.from_marketo(body.get("result") or [], api_user=entry.scope if entry else None)

    def count_other_integrations(self) -> ApiUsage:
        """Read today's usage (one call) and leave room for the calls other integrations made.

        From then on this hook stops (``BudgetExhausted``) before the instance as a whole -- this provider and every
        other API user together -- would pass ``daily_budget - budget_reserve``.
        """
        usage = self.usage_today()
        self.others_today = max(0, usage.total - self.budget_used())
        return usage

    def get_leads_by_email(
        self, emails: Iterable[str], fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Leads whose e-mail is one of ``emails`` (≤300 per call; long lists go as POST ``_method=GET``)."""
        yield from self._filter("/rest/v1/leads.json", "email", emails, fields)

    def describe_leads(self) -> list[dict[str, Any]]:
        """The lead fields (``describe2``): dicts with ``name``, ``displayName``, ``dataType``, …"""
        return fields_of(self._call("GET", "/rest/v1/leads/describe2.json"))

    def create_lead_fields(self, fields: Iterable[Mapping[str, Any]]) -> list[RecordResult]:
        """Create custom lead fields (``displayName``, ``name``, ``dataType``, …); ≤100 per call."""
        return self._write(
            "POST", "/rest/v1/leads/schema/fields.json", fields, lambda chunk: {"input": chunk}, max_records=100
        )

    def _filter(
        self, path: str, filter_type: str, values: Iterable[Any], fields: Sequence[str] | None
    ) -> Iterator[dict[str, Any]]:
        items = [str(v) for v in values]
        for i in range(0, len(items), MAX_RECORDS):
            params = [("filterType", filter_type), ("filterValues", ",".join(items[i : i + MAX_RECORDS]))]
            if fields:
                params.append(("fields", ",".join(fields)))
            yield from self._read_pages(path, params)

    # -- companies --------------------------------------------------------------------------------------

    def upsert_companies(
        self,
        companies: Iterable[Mapping[str, Any]],
        *,
        raise_if_crm_synced: bool = False,
        on_batch: BatchCallback | None = None,
    ) -> list[RecordResult]:
        """Create or update companies, deduplicated by ``externalCompanyId`` (``dedupeBy: dedupeFields``).

        On a CRM-synced instance (``1018``) the records come back ``skipped`` with reason ``1018`` and
        ``self.crm_synced`` becomes True (or :class:`CrmSyncedCompanies` is raised with ``raise_if_crm_synced``).
        """
        results = self._write(
            "POST",
            "/rest/v1/companies.json",
            companies,
            lambda chunk: {"action": "createOrUpdate", "dedupeBy": "dedupeFields", "input": chunk},
            stop_codes=frozenset({CRM_SYNCED_CODE}),
            on_batch=on_batch,
            idempotent=True,
        )
        if any(reason.code == CRM_SYNCED_CODE for r in results for reason in r.reasons):
            if not self.crm_synced:
                self.log.warning("Marketo %s syncs companies with a CRM (1018): companies are read-only", self.instance)
            self.crm_synced = True
            if raise_if_crm_synced:
                raise CrmSyncedCompanies(
                    f"Marketo {self.instance} syncs companies with a CRM (1018): companies are read-only through "
                    "the API; write the payment facts to lead fields instead",
                    code=CRM_SYNCED_CODE,
                )
        return results

    def companies_writable(self) -> bool:
        """Whether companies can be written (False on a CRM-synced instance); probes with a no-op update."""
        if not self.crm_synced:
            probe = {
                "action": "updateOnly",
                "dedupeBy": "dedupeFields",
                "input": [{"externalCompanyId": "fbmkto:__writable-probe__"}],
            }
            try:
                body = self._call("POST", "/rest/v1/companies.json", body=dumps(probe), idempotent=True)
            except ApiError as exc:
                if exc.code != CRM_SYNCED_CODE:
                    raise
                self.crm_synced = True
            else:
                results = [RecordResult.from_marketo(0, e) for e in body.get("result") or [] if isinstance(e, Mapping)]
                self.crm_synced = any(reason.code == CRM_SYNCED_CODE for r in results for reason in r.reasons)
        return not self.crm_synced

    def get_companies(
        self, filter_type: str, values: Iterable[Any], fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Companies by a searchable field (e.g. ``externalCompanyId``, ``company``), ≤300 values per call."""
        yield from self._filter("/rest/v1/companies.json", filter_type, values, fields)

    def describe_companies(self) -> list[dict[str, Any]]:
        """The company fields (dicts with ``name``, ``displayName``, ``dataType``, …)."""
        return fields_of(self._call("GET", "/rest/v1/companies/describe.json"))

    # -- static lists and campaigns ---------------------------------------------------------------------

    def add_to_list(self, list_id: int, lead_ids: Iterable[int]) -> list[RecordResult]:
        """Add leads to a static list; per lead ``added`` or ``skipped`` (e.g. 1004 lead not found)."""
        return self._write(
            "POST",
            f"/rest/v1/lists/{int(list_id)}/leads.json",
            [{"id": int(i)} for i in lead_ids],
            lambda chunk: {"input": chunk},
            idempotent=True,
        )

    def remove_from_list(self, list_id: int, lead_ids: Iterable[int]) -> list[RecordResult]:
        """Remove leads from a static list; per lead ``removed`` or ``skipped``."""
        return self._write(
            "DELETE",
            f"/rest/v1/lists/{int(list_id)}/leads.json",
            [{"id": int(i)} for i in lead_ids],
            lambda chunk: {"input": chunk},
            idempotent=True,
        )

    def get_static_list(self, list_id: int) -> dict[str, Any] | None:
        """The static list ``list_id`` (``id``, ``name``, …), or None when the instance has no such list."""
        return self._get_one(f"/rest/v1/lists/{int(list_id)}.json")

    def get_smart_campaign(self, campaign_id: int) -> dict[str, Any] | None:
        """The smart campaign ``campaign_id`` (``id``, ``name``, ``type``, ``active``, …), or None when absent."""
        return self._get_one(f"/rest/v1/campaigns/{int(campaign_id)}.json")

    def _get_one(self, path: str) -> dict[str, Any] | None:
        # An absent object is answered as 1013 by some endpoints and as an empty result by others: both mean None.
        try:
            result = self._call("GET", path).get("result") or []
        except ApiError as exc:
            if exc.code == OBJECT_NOT_FOUND_CODE:
                return None
            raise
        return dict(result[0]) if result and isinstance(result[0], Mapping) else None

    def trigger_campaign(self, campaign_id: int, lead_ids: Iterable[int]) -> int:
        """Request a smart campaign for leads (≤100 per call); returns the number of calls made."""
        ids = [int(i) for i in lead_ids]
        calls = 0
        for i in range(0, len(ids), 100):
            leads = [{"id": lead} for lead in ids[i : i + 100]]
            self._call(
                "POST", f"/rest/v1/campaigns/{int(campaign_id)}/trigger.json", body=dumps({"input": {"leads": leads}})
            )
            calls += 1
        return calls

    # -- custom activities ------------------------------------------------------------------------------

    def list_activity_types(self) -> list[dict[str, Any]]:
        """Custom activity types of the instance (each with ``apiName``, ``id``, ``status``, attributes)."""
        return list(self._call("GET", "/rest/v1/activities/external/types.json").get("result") or [])

    def activity_type_ids(self) -> dict[str, int]:
        """``apiName`` → activity type id, the id activities are written with."""
        return {str(t["apiName"]): int(t["id"]) for t in self.list_activity_types() if t.get("id") is not None}

    def create_activity_type(
        self,
        api_name: str,
        name: str,
        *,
        trigger_name: str,
        filter_name: str,
        primary_attribute: Mapping[str, Any],
        description: str | None = None,
    ) -> dict[str, Any]:
        """Create a custom activity type with its primary attribute (a draft until :meth:`approve_activity_type`).

        Marketo's create takes no secondary attributes: add them with :meth:`add_activity_type_attributes`.
        """
        payload: dict[str, Any] = {
            "apiName": api_name,
            "name": name,
            "triggerName": trigger_name,
            "filterName": filter_name,
            "primaryAttribute": dict(primary_attribute),
        }
        if description:
            payload["description"] = description
        return first_result(self._call("POST", "/rest/v1/activities/external/type.json", body=dumps(payload)))

    def add_activity_type_attributes(self, api_name: str, attributes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Add attributes to a custom activity type (its draft; approve afterwards)."""
        return first_result(
            self._call(
                "POST",
                f"/rest/v1/activities/external/type/{api_name}/attributes/create.json",
                body=dumps({"attributes": [dict(a) for a in attributes]}),
            )
        )

    def approve_activity_type(self, api_name: str) -> dict[str, Any]:
        """Approve the draft of a custom activity type so activities can be written with it."""
        return first_result(self._call("POST", f"/rest/v1/activities/external/type/{api_name}/approve.json"))

    def add_activities(
        self, activities: Iterable[Mapping[str, Any]], *, on_batch: BatchCallback | None = None
    ) -> list[RecordResult]:
        """Write custom activities (``leadId``, ``activityDate``, ``activityTypeId``, ``primaryAttributeValue``,
        ``attributes``); per record ``added``, or ``skipped`` with Marketo's errors.

        Marketo has no idempotency key: the same activity sent twice is two activities, so these calls are
        never resent after a read failure (the ledger resolves them).
        """
        return self._write(
            "POST", "/rest/v1/activities/external.json", activities, lambda chunk: {"input": chunk}, on_batch=on_batch
        )

    def iter_activities(
        self, since: datetime, activity_type_ids: Iterable[int], lead_ids: Iterable[int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Activities since ``since`` of the given types (and leads), over paging tokens.

        Chunked as Marketo requires: ≤10 type ids and ≤30 lead ids per call.
        """
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        types = [int(t) for t in activity_type_ids]
        if not types:
            raise ValueError("activity_type_ids is required (Marketo reads activities by type)")
        leads: list[int | None] = [int(i) for i in lead_ids] if lead_ids is not None else [None]
        if not leads:
            return
        start_token = self._call(
            "GET", "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since.isoformat()}
        )["nextPageToken"]
        for t in range(0, len(types), 10):
            for i in range(0, len(leads), 30):
                params: list[tuple[str, Any]] = [("activityTypeIds", ",".join(map(str, types[t : t + 10])))]
                lead_chunk = [lead for lead in leads[i : i + 30] if lead is not None]
                if lead_chunk:
                    params.append(("leadIds", ",".join(map(str, lead_chunk))))
                token = start_token
                while True:
                    body = self._read("/rest/v1/activities.json", [*params, ("nextPageToken", token)])
                    yield from body.get("result") or []
                    token = body.get("nextPageToken") or token
                    if not body.get("moreResult"):
                        break

    def paging_token(self, since: datetime) -> str:
        """A date-based paging token for the activities after ``since`` (``activities/pagingtoken.json``)."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        body = self._call("GET", "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since.isoformat()})
        return str(body["nextPageToken"])

    def lead_changes(self, token: str, fields: Sequence[str]) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Marketo's Lead Changes feed from ``token``: ``(activities, nextPageToken)`` per page, until
        ``moreResult`` is false. "New Lead" (12) and the "Change Data Value" (13) activities of ``fields``
        (lead field API names), each with ``fields[]`` of ``{id, name, newValue, oldValue}``.

        The last page's token is the feed's position: keep it and start there next time (a token Marketo
        refuses answers ``1003``, raised as :class:`~airflow_provider_fbmkto.exceptions.ApiError`).
        """
        if not fields:
            raise ValueError("fields is required (Marketo returns the changes of the fields named)")
        params: list[tuple[str, Any]] = [("fields", ",".join(fields)), ("batchSize", MAX_RECORDS)]
        while True:
            body = self._read("/rest/v1/activities/leadchanges.json", [*params, ("nextPageToken", token)])
            token = str(body.get("nextPageToken") or token)
            yield list(body.get("result") or []), token
            if not body.get("moreResult"):
                return

    def get_leads_by_id(self, ids: Iterable[int], fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Leads by id (≤300 per call); ids Marketo does not know (deleted, merged away) are simply absent."""
        yield from self._filter("/rest/v1/leads.json", "id", ids, fields)

    # -- connection test --------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and make one cheap describe call; ``(ok, message)`` naming what to fix."""
        try:
            creds = self.creds
        except FbmktoError as exc:
            return False, str(exc)
        policy = self.http.policy
        self.http.policy = RetryPolicy(attempts=1, base=policy.base, cap=policy.cap)
        try:
            TOKENS.invalidate(self._token_key, None)
            fields = self.describe_leads()
        except TransportError as exc:
            return (
                False,
                f"cannot reach {creds.base_url} ({'no answer' if exc.sent else 'connection refused'}); "
                "check the connection's host",
            )
        except FbmktoError as exc:
            return False, str(exc)
        finally:
            self.http.policy = policy
        return True, f"Connected to Marketo {creds.instance}: {len(fields)} lead fields visible"

"""MarketoHook: the Marketo REST API behind Marketo's limits, with per-record results.

Connection (type ``marketo``): host = REST base URL (``https://<munchkin>.mktorest.com``), login = client id,
password = client secret; extras (plain or ``extra__marketo__``-prefixed) ``calls_per_window`` (90),
``window_seconds`` (20), ``max_concurrency`` (8), ``daily_budget`` (45000), ``budget_reserve`` (0),
``request_timeout`` (60). Any other extra is an error naming it.

Every call goes through the one retry layer, :class:`~airflow_provider_fbmkto.http.HttpClient`, with

* a **guard** held around each attempt: the instance's shared :class:`MarketoRateLimiter` slot (sliding
  window and concurrency) and one call of the daily budget, spent in the state DB so every process and account
  writing into the instance shares it (calls Marketo does not count, 601/602/604/605/608/611, are refunded);
* a **classifier** that reads Marketo's envelope: 606/615/429 wait for the rate window, 604/608/611/713/5xx
  back off, 1029 (export queue full) waits a minute, 601/602 fetch a new token and resend once, and 607
  raises :class:`QuotaExhausted` at once and stops this process from sending to the instance until the reset.

All waits scale with ``window_seconds / 20``, so an emulator with a shortened window runs in shortened time.

**Concurrency across workers.** The limiter is per process. To keep Marketo's 10-calls-in-flight limit across
Celery workers, run every task that uses one instance in an Airflow pool of 8 slots, e.g.
``airflow pools set marketo_123-abc-456 8 "Marketo instance 123-ABC-456"`` and ``pool="marketo_123-abc-456"``
on those tasks. A pool counts tasks, not calls: a task calling the hook from one thread has one call in flight,
so 8 slots mean at most 8 calls; a task calling from N threads should take ``pool_slots=N``. The 20-second
window is per process as well: processes together can pass 100 calls per 20 s, and Marketo then answers 606,
which every hook of the process waits out and retries; lower ``calls_per_window`` (90 / concurrent processes)
to avoid that. The daily budget is shared by all processes already (state DB).

**CRM-synced instances.** With a Salesforce/Dynamics sync, companies are read-only (``1018``, at response or
record level). :meth:`MarketoHook.upsert_companies` then marks the records ``skipped`` with reason ``1018``,
sends no further batches and sets ``hook.crm_synced = True`` so the pipeline can degrade to lead fields;
pass ``raise_if_crm_synced=True`` to get :class:`CrmSyncedCompanies` instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_fbmkto.exceptions import ApiError, FbmktoError, TransportError
from airflow_provider_fbmkto.hooks.marketo_auth import TOKENS
from airflow_provider_fbmkto.hooks.marketo_base import BatchCallback, MarketoBaseHook
from airflow_provider_fbmkto.hooks.marketo_types import (
    CRM_SYNCED_CODE,
    MAX_EXPORT_DAYS,
    MAX_RECORDS,
    BulkExportError,
    BulkExportStatus,
    CrmSyncedCompanies,
    RecordResult,
    dumps,
    export_windows,
    fields_of,
    first_result,
    iso_utc,
)
from airflow_provider_fbmkto.http import RetryPolicy

__all__ = ["MarketoHook", "RecordResult", "export_windows"]


class MarketoHook(MarketoBaseHook):
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
        on_batch: BatchCallback | None = None,
    ) -> list[RecordResult]:
        """Create or update leads (by ``lookup_field``); one :class:`RecordResult` per input, in input order.

        :param on_batch: called with each batch's results as soon as Marketo answered them.
        """
        return self._write(
            "POST",
            "/rest/v1/leads.json",
            leads,
            lambda chunk: {"action": "createOrUpdate", "lookupField": lookup_field, "input": chunk},
            on_batch=on_batch,
            idempotent=True,  # createOrUpdate with the same values leaves the same state
        )

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
        attributes: Sequence[Mapping[str, Any]] = (),
        description: str | None = None,
    ) -> dict[str, Any]:
        """Create a custom activity type (a draft until :meth:`approve_activity_type`)."""
        payload: dict[str, Any] = {
            "apiName": api_name,
            "name": name,
            "triggerName": trigger_name,
            "filterName": filter_name,
            "primaryAttribute": dict(primary_attribute),
        }
        if attributes:
            payload["attributes"] = [dict(a) for a in attributes]
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

    # -- bulk lead export -------------------------------------------------------------------------------

    def create_lead_export(self, fields: Sequence[str], start: datetime, end: datetime) -> str:
        """Create a bulk lead export of leads updated in ``[start, end]`` (≤31 days); returns its export id.

        :raises BulkExportFilterUnsupported: the instance has no ``updatedAt`` filter (``1035``): read by
            e-mail instead.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end <= start or end - start > timedelta(days=MAX_EXPORT_DAYS):
            raise ValueError(
                f"a Marketo bulk export covers at most {MAX_EXPORT_DAYS} days ({start.isoformat()} .. "
                f"{end.isoformat()}); split the window with export_windows()"
            )
        payload = {
            "fields": list(fields),
            "format": "CSV",
            "filter": {"updatedAt": {"startAt": iso_utc(start), "endAt": iso_utc(end)}},
        }
        result = first_result(self._call("POST", "/bulk/v1/leads/export/create.json", body=dumps(payload)))
        return str(result["exportId"])

    def enqueue_export(self, export_id: str) -> BulkExportStatus:
        """Queue a created export (``1029`` queue full: waited out and retried)."""
        return BulkExportStatus.from_marketo(
            first_result(self._call("POST", f"/bulk/v1/leads/export/{export_id}/enqueue.json"))
        )

    def export_status(self, export_id: str) -> BulkExportStatus:
        """The export's state (poll at most once a minute)."""
        return BulkExportStatus.from_marketo(
            first_result(self._call("GET", f"/bulk/v1/leads/export/{export_id}/status.json"))
        )

    def cancel_export(self, export_id: str) -> BulkExportStatus:
        """Cancel an export (a timed-out sensor does, so it stops holding the instance's export queue)."""
        return BulkExportStatus.from_marketo(
            first_result(self._call("POST", f"/bulk/v1/leads/export/{export_id}/cancel.json"))
        )

    def download_export(self, export_id: str) -> Iterator[dict[str, str]]:
        """The rows of a completed export, streamed from its CSV file (never loaded whole)."""
        path = f"/bulk/v1/leads/export/{export_id}/file.json"
        response = self._send("GET", path, stream=True)
        try:
            if response.status_code == 404:
                raise BulkExportError(
                    f"Marketo export {export_id} has no file (not completed, or expired after about 7 days)",
                    status=404,
                )
            if "json" in response.headers.get("Content-Type", ""):
                self._call("GET", path)  # an error envelope: raise its typed error
                raise BulkExportError(f"Marketo export {export_id}: no CSV file", status=response.status_code)
            response.raw.decode_content = True
            response.raw.auto_close = False  # io-compatible: EOF reads b"" instead of a closed-file error
            text = io.TextIOWrapper(response.raw, encoding="utf-8", newline="")  # type: ignore[type-var]
            yield from csv.DictReader(text)
        finally:
            response.close()

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

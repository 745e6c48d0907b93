"""The Marketo instance's state and rules (moto's ``models.py``): one :class:`MarketoModel` per emulator.

Every public method takes the model's lock, so the HTTP handlers (event-loop thread) and a test's own
thread can both use it. Response-level failures are raised as :mod:`.errors` classes; per-record
outcomes are returned in the result list, in input order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_fbmkto.testing.marketo.activities import ActivityStore
from airflow_provider_fbmkto.testing.marketo.bulk import BulkExports, ExportJob
from airflow_provider_fbmkto.testing.marketo.errors import (
    AlreadyExists,
    Blank,
    CrmEnabled,
    InvalidData,
    ObjectNotFound,
)
from airflow_provider_fbmkto.testing.marketo.fields import (
    DEFAULT_COMPANY_CUSTOM_FIELDS,
    STANDARD_COMPANY_FIELDS,
    STANDARD_LEAD_FIELDS,
    decode_token,
    encode_token,
    iso,
)
from airflow_provider_fbmkto.testing.marketo.leads import LeadRules, StaticList, partition_ids
from airflow_provider_fbmkto.testing.marketo.limits import Limits, TokenStore
from airflow_provider_fbmkto.testing.marketo.records import (
    ACTIONS,
    MAX_BATCH,
    Entity,
    company_store,
    input_list,
    lead_store,
    record_result,
)

MAX_CAMPAIGN_LEADS = 100
ADD_TO_LIST, REMOVE_FROM_LIST = 24, 25


@dataclass(frozen=True)
class CampaignRequest:
    campaign_id: int
    lead_ids: tuple[int, ...]
    tokens: tuple[tuple[str, str], ...]
    at: datetime


def _crm_mode(value: bool | str | None) -> str | None:
    if value is True:
        return "response"
    if value in (False, None):
        return None
    if value in ("response", "record"):
        return str(value)
    raise ValueError(f"crm_synced must be False, True, 'response' or 'record', not {value!r}")


class MarketoModel(LeadRules):
    """State, limits and rules of one emulated Marketo instance (see the package docstring's table)."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        token_ttl: int = 3600,
        rate_limit: int = 100,
        window_seconds: float = 20.0,
        max_concurrency: int = 10,
        daily_quota: int = 50_000,
        count_rejected_calls: bool = True,
        crm_synced: bool | str = False,
        company_fields: Mapping[str, str] | None = None,
        lists: Mapping[int, str] | None = None,
        campaigns: Mapping[int, str] | None = None,
        bulk_step_seconds: float = 1.0,
        updated_at_filter_supported: bool = True,
        max_custom_activity_types: int = 10,
        partitions: Iterable[str] = (),
        require_partition_name: bool = False,
        api_user: str = "api-user",
        bulk_daily_bytes: int = 500 * 1024 * 1024,
    ) -> None:
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self.lock = threading.RLock()
        self.crm_synced = _crm_mode(crm_synced)
        self.partitions = partition_ids(partitions)
        self.require_partition_name = require_partition_name
        self._company_fields = dict(DEFAULT_COMPANY_CUSTOM_FIELDS if company_fields is None else company_fields)
        self._initial_lists = dict(lists or {})
        self._initial_campaigns = dict(campaigns or {})
        self.tokens = TokenStore(self.clock, token_ttl)
        self.limits = Limits(
            self.clock,
            api_user=api_user,
            rate_limit=rate_limit,
            window_seconds=window_seconds,
            max_concurrency=max_concurrency,
            daily_quota=daily_quota,
            count_rejected=count_rejected_calls,
        )
        self.leads = lead_store(self.clock, STANDARD_LEAD_FIELDS)
        self.leads.on_change = self._lead_changed
        self.companies = company_store(self.clock, STANDARD_COMPANY_FIELDS)
        self.activities = ActivityStore(self.clock, max_custom_types=max_custom_activity_types)
        self.exports = BulkExports(
            self.clock,
            self._export_rows,
            step_seconds=bulk_step_seconds,
            updated_at_filter_supported=updated_at_filter_supported,
            daily_bytes=bulk_daily_bytes,
        )
        self.reset()

    def reset(self) -> None:
        """Forget everything (tokens, usage, records, types, jobs) and re-apply the constructor's set-up."""
        with self.lock:
            self.tokens.reset()
            self.limits.reset()
            self.leads.reset()
            self.companies.reset()
            for name, data_type in self._company_fields.items():
                self.companies.add_field(name, data_type)
            self.activities.reset()
            self.exports.reset()
            self.lists: dict[int, StaticList] = {i: StaticList(i, n) for i, n in self._initial_lists.items()}
            self.campaigns: dict[int, str] = dict(self._initial_campaigns)
            self.campaign_requests: list[CampaignRequest] = []

    # -- set-up helpers (no HTTP) ---------------------------------------------------------------------

    def add_company_field(self, name: str, data_type: str) -> None:
        """Configure a custom company field (Marketo allows this only in its admin UI)."""
        with self.lock:
            self.companies.add_field(name, data_type)

    def add_lead_field(self, name: str, data_type: str, display_name: str | None = None) -> None:
        with self.lock:
            self.leads.add_field(name, data_type, display_name)

    def create_list(self, name: str, list_id: int | None = None) -> int:
        """Create a static list and return its id (next free id from 1001 when not given)."""
        with self.lock:
            if list_id is None:
                list_id = max([1000, *self.lists]) + 1
            if list_id in self.lists:
                raise AlreadyExists(f"List {list_id} already exists")
            self.lists[list_id] = StaticList(list_id, name)
            return list_id

    # -- lead and company reads ----------------------------------------------------------------------

    def query(self, store: str, params: Mapping[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /leads.json`` and ``/companies.json`` by filterType/filterValues, one page."""
        with self.lock:
            target = self.leads if store == "lead" else self.companies
            values = [v.strip() for v in params.get("filterValues", "").split(",") if v.strip()]
            fields = [f.strip() for f in params["fields"].split(",")] if params.get("fields") else None
            items, token = target.query(
                filter_type=params.get("filterType"),
                filter_values=values,
                fields=fields,
                batch_size=_int_param(params, "batchSize", MAX_BATCH),
                token=params.get("nextPageToken") or None,
            )
            if store == "company":
                items = [{"seq": i, **item} for i, item in enumerate(items)]
            return items, token

    # -- companies ------------------------------------------------------------------------------------

    def sync_companies(self, body: Any) -> list[dict[str, Any]]:
        with self.lock:
            if self.crm_synced == "response":
                raise CrmEnabled()
            records = input_list(body)
            action = body.get("action") or "createOrUpdate"
            if action not in ACTIONS:
                raise InvalidData(f"Invalid action '{action}'")
            dedupe = body.get("dedupeBy") or "dedupeFields"
            if dedupe not in ("dedupeFields", "idField"):
                raise InvalidData(f"Invalid dedupeBy '{dedupe}'")
            key = "externalCompanyId" if dedupe == "dedupeFields" else "id"
            out: list[dict[str, Any]] = []
            for seq, record in enumerate(records):
                if self.crm_synced == "record":
                    out.append({"seq": seq, **record_result("skipped", None, [CrmEnabled().reason()])})
                    continue
                out.append({"seq": seq, **record_result(*self.companies.upsert(record, action=action, key=key))})
            return out

    def describe_companies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "name": "Company",
                    "idField": "id",
                    "dedupeFields": ["externalCompanyId"],
                    "searchableFields": [[f] for f in self.companies.searchable],
                    "fields": [f.describe2() for f in self.companies.fields.values()],
                }
            ]

    # -- activities -----------------------------------------------------------------------------------

    def add_activities(self, body: Any) -> list[dict[str, Any]]:
        with self.lock:
            records = input_list(body)
            return [self.activities.add_one(r, lambda i: i in self.leads.items) for r in records]

    def activity_page(self, params: Mapping[str, str]) -> tuple[list[dict[str, Any]], str, bool]:
        with self.lock:
            token = params.get("nextPageToken")
            if not token:
                raise Blank("nextPageToken cannot be blank")
            type_ids = _id_set(params.get("activityTypeIds"), "activityTypeIds", 10)
            if not type_ids:
                raise Blank("activityTypeIds cannot be blank")
            lead_ids = _id_set(params.get("leadIds"), "leadIds", 30) or None
            batch = _int_param(params, "batchSize", MAX_BATCH)
            if not 1 <= batch <= MAX_BATCH:
                raise InvalidData(f"batchSize must be between 1 and {MAX_BATCH}")
            return self.activities.page(token, type_ids=type_ids, lead_ids=lead_ids, batch_size=batch)

    def lead_changes_page(self, params: Mapping[str, str]) -> tuple[list[dict[str, Any]], str, bool]:
        """``GET /activities/leadchanges.json``: ``nextPageToken`` and ``fields`` (lead fields) required."""
        with self.lock:
            token = params.get("nextPageToken")
            if not token:
                raise Blank("nextPageToken cannot be blank")
            names = [f.strip() for f in params.get("fields", "").split(",") if f.strip()]
            if not names:
                raise Blank("fields cannot be blank")
            fields = frozenset(self.leads.check_fields(names))  # 1006 for a name that is no lead field
            lead_ids = _id_set(params.get("leadIds"), "leadIds", 30) or None
            if params.get("listId"):
                members = set(self._list(_int_param(params, "listId", 0)).members)
                lead_ids = members if lead_ids is None else lead_ids & members
            batch = _int_param(params, "batchSize", MAX_BATCH)
            if not 1 <= batch <= MAX_BATCH:
                raise InvalidData(f"batchSize must be between 1 and {MAX_BATCH}")
            return self.activities.lead_changes(token, fields=fields, lead_ids=lead_ids, batch_size=batch)

    def edit_company(self, external_id: str, values: Mapping[str, Any]) -> Entity:
        """A person in Marketo edits a company (companies log no activities). :raises KeyError: no such company."""
        with self.lock:
            if not self.companies.find("externalCompanyId", external_id):
                raise KeyError(f"no company {external_id}")
            record = {**{k: v for k, v in values.items() if k != "externalCompanyId"}, "externalCompanyId": external_id}
            status, entity, reasons = self.companies.upsert(record, action="updateOnly", key="externalCompanyId")
            if entity is None:
                raise InvalidData("; ".join(r.message for r in reasons) or f"company not {status}")
            return entity

    # -- static lists and campaigns -------------------------------------------------------------------

    def _list(self, list_id: int) -> StaticList:
        found = self.lists.get(list_id)
        if found is None:
            raise ObjectNotFound(f"Static list {list_id} not found")
        return found

    def get_list(self, list_id: int) -> dict[str, Any]:
        """``GET /rest/v1/lists/{id}.json``: the list's id and name (unknown list: 1013)."""
        with self.lock:
            found = self._list(list_id)
            return {"id": found.id, "name": found.name, "description": "", "workspaceName": "Default"}

    def create_campaign(self, name: str, campaign_id: int | None = None) -> int:
        """Create a requestable smart campaign (a Marketo user does this in the UI); return its id."""
        with self.lock:
            if campaign_id is None:
                campaign_id = max([1000, *self.campaigns]) + 1
            if campaign_id in self.campaigns:
                raise AlreadyExists(f"Campaign {campaign_id} already exists")
            self.campaigns[campaign_id] = name
            return campaign_id

    def get_campaign(self, campaign_id: int) -> dict[str, Any]:
        """``GET /rest/v1/campaigns/{id}.json``: a trigger campaign, active (unknown campaign: 1013)."""
        with self.lock:
            if campaign_id not in self.campaigns:
                raise ObjectNotFound(f"Campaign {campaign_id} not found")
            name = self.campaigns[campaign_id]
            return {"id": campaign_id, "name": name, "type": "trigger", "workspaceName": "Default", "active": True}

    def change_list(self, list_id: int, ids: list[Any], *, add: bool) -> list[dict[str, Any]]:
        with self.lock:
            target = self._list(list_id)
            if not ids:
                raise Blank("input cannot be blank")
            if len(ids) > MAX_BATCH:
                raise InvalidData(f"Too many records in input ({len(ids)}), the limit is {MAX_BATCH}")
            out: list[dict[str, Any]] = []
            for raw in ids:
                try:
                    lead_id = int(raw)
                except (TypeError, ValueError):
                    out.append(_skipped(None, "1003", f"Invalid id '{raw}'"))
                    continue
                list_attr = [{"name": "List ID", "value": list_id}]
                if lead_id not in self.leads.items:
                    out.append(_skipped(lead_id, "1004", "Lead not found"))
                elif add:
                    if lead_id not in target.members:
                        target.members[lead_id] = None
                        self.activities.record(lead_id, ADD_TO_LIST, target.name, list_attr)
                    out.append({"id": lead_id, "status": "added"})
                elif lead_id in target.members:
                    del target.members[lead_id]
                    self.activities.record(lead_id, REMOVE_FROM_LIST, target.name, list_attr)
                    out.append({"id": lead_id, "status": "removed"})
                else:
                    out.append(_skipped(lead_id, "1015", "Lead not in list"))
            return out

    def list_page(self, list_id: int, params: Mapping[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        with self.lock:
            members = sorted(self._list(list_id).members)
            fields = [f.strip() for f in params["fields"].split(",")] if params.get("fields") else None
            names = self.leads.check_fields(fields) if fields else list(self.leads.default_fields)
            batch = _int_param(params, "batchSize", MAX_BATCH)
            if not 1 <= batch <= MAX_BATCH:
                raise InvalidData(f"batchSize must be between 1 and {MAX_BATCH}")
            offset = 0
            if params.get("nextPageToken"):
                parts = decode_token(params["nextPageToken"], f"list{list_id}")
                offset = int(parts[0]) if parts and parts[0].isdigit() else 0
            page = members[offset : offset + batch]
            token = encode_token(f"list{list_id}", offset + batch) if offset + batch < len(members) else None
            return [self.leads.items[i].render(names) for i in page], token

    def trigger_campaign(self, campaign_id: int, body: Any) -> list[dict[str, Any]]:
        with self.lock:
            if campaign_id not in self.campaigns:
                raise ObjectNotFound(f"Campaign {campaign_id} not found")
            spec = body.get("input") if isinstance(body, Mapping) else None
            leads = spec.get("leads") if isinstance(spec, Mapping) else None
            if not isinstance(leads, list) or not leads:
                raise Blank("input.leads cannot be blank")
            if len(leads) > MAX_CAMPAIGN_LEADS:
                raise InvalidData(f"Too many leads ({len(leads)}), the limit is {MAX_CAMPAIGN_LEADS}")
            ids: list[int] = []
            for raw in leads:
                try:
                    ids.append(int(raw["id"]))
                except (TypeError, ValueError, KeyError):
                    raise InvalidData(f"Invalid lead {raw!r}: expected {{'id': <lead id>}}") from None
            assert isinstance(spec, Mapping)
            tokens = spec.get("tokens") or []
            pairs = tuple((str(t.get("name")), str(t.get("value"))) for t in tokens if isinstance(t, Mapping))
            known = tuple(i for i in ids if i in self.leads.items)
            self.campaign_requests.append(CampaignRequest(campaign_id, known, pairs, self.clock()))
            return [{"id": campaign_id}]

    # -- bulk export ----------------------------------------------------------------------------------

    def _export_rows(self, names: list[str], start: datetime, end: datetime, kind: str) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for lead in sorted(self.leads.items.values(), key=lambda e: e.id):
            stamp = lead.updated_at if kind == "updatedAt" else lead.created_at
            if stamp is not None and start <= stamp <= end:
                rows.append([lead.get(n) for n in names])
        return rows

    def export(self, action: str, export_id: str | None = None, body: Any = None) -> ExportJob:
        """Run one bulk export operation: create, enqueue, status, cancel or file."""
        with self.lock:
            if action == "create":
                return self.exports.create(body, self.leads.fields)
            assert export_id is not None
            op = {"enqueue": self.exports.enqueue, "status": self.exports.poll, "cancel": self.exports.cancel}
            return op.get(action, self.exports.file)(export_id)

    # -- views for tests ------------------------------------------------------------------------------

    def lead_views(self) -> list[dict[str, Any]]:
        with self.lock:
            return [_full(e) for e in sorted(self.leads.items.values(), key=lambda e: e.id)]

    def company_views(self) -> list[dict[str, Any]]:
        with self.lock:
            return [_full(e) for e in sorted(self.companies.items.values(), key=lambda e: e.id)]


def _skipped(lead_id: int | None, code: str, message: str) -> dict[str, Any]:
    out: dict[str, Any] = {} if lead_id is None else {"id": lead_id}
    return {**out, "status": "skipped", "reasons": [{"code": code, "message": message}]}


def _full(entity: Entity) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entity.id, **entity.values}
    if entity.partition_id is not None:
        out["leadPartitionId"] = entity.partition_id
    out["createdAt"] = iso(entity.created_at) if entity.created_at else None
    out["updatedAt"] = iso(entity.updated_at) if entity.updated_at else None
    return out


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidData(f"Invalid value '{raw}' for {name}: expected an integer") from None


def _id_set(raw: str | None, name: str, limit: int) -> set[int]:
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if len(parts) > limit:
        raise InvalidData(f"Too many {name} ({len(parts)}), the limit is {limit}")
    try:
        return {int(p) for p in parts}
    except ValueError:
        raise InvalidData(f"Invalid {name} '{raw}': expected comma-separated integers") from None

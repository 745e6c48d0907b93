"""The Marketo instance's state and rules (moto's ``models.py``): one :class:`MarketoModel` per emulator.

Every public method takes the model's lock, so the HTTP handlers (event-loop thread) and a test's own
thread can both use it. Response-level failures are raised as :mod:`.exceptions` classes; per-record
outcomes are returned in the result list, in input order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_fbmkto.testing.marketo.activities import ActivityStore
from airflow_provider_fbmkto.testing.marketo.bulk import BulkExports, ExportJob
from airflow_provider_fbmkto.testing.marketo.exceptions import (
    AlreadyExists,
    Blank,
    CrmEnabled,
    FieldNotSupported,
    InvalidData,
    MarketoError,
    ObjectNotFound,
    Reason,
)
from airflow_provider_fbmkto.testing.marketo.fields import (
    DEFAULT_COMPANY_CUSTOM_FIELDS,
    STANDARD_COMPANY_FIELDS,
    STANDARD_LEAD_FIELDS,
    decode_token,
    encode_token,
    iso,
)
from airflow_provider_fbmkto.testing.marketo.limits import Limits, TokenStore
from airflow_provider_fbmkto.testing.marketo.records import ACTIONS, MAX_BATCH, Entity, company_store, lead_store

MAX_LEAD_FIELDS_PER_CALL = 100
MAX_CAMPAIGN_LEADS = 100
ADD_TO_LIST, REMOVE_FROM_LIST, NEW_LEAD, CHANGE_DATA_VALUE = 24, 25, 12, 13


@dataclass
class StaticList:
    id: int
    name: str
    members: dict[int, None] = field(default_factory=dict)


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


def input_list(body: Any, limit: int = MAX_BATCH) -> list[Any]:
    """The ``input`` array of a write: 701 when absent or empty, 1003 when longer than ``limit``."""
    if not isinstance(body, Mapping):
        raise InvalidData("Request body must be a JSON object")
    records = body.get("input")
    if not isinstance(records, list) or not records:
        raise Blank("input cannot be blank")
    if len(records) > limit:
        raise InvalidData(f"Too many records in input ({len(records)}), the limit is {limit}")
    return records


def _result(status: str, entity: Entity | None, reasons: list[Reason]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entity is not None:
        out["id"] = entity.id
    out["status"] = status
    if reasons:
        out["reasons"] = [r.as_json() for r in reasons]
    return out


class MarketoModel:
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
    ) -> None:
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self.lock = threading.RLock()
        self.crm_synced = _crm_mode(crm_synced)
        self._company_fields = dict(DEFAULT_COMPANY_CUSTOM_FIELDS if company_fields is None else company_fields)
        self._initial_lists = dict(lists or {})
        self.campaigns = dict(campaigns) if campaigns is not None else None
        self.tokens = TokenStore(self.clock, token_ttl)
        self.limits = Limits(
            self.clock,
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

    # -- leads ----------------------------------------------------------------------------------------

    def _lead_changed(self, lead: Entity, changed: dict[str, tuple[Any, Any]], created: bool) -> None:
        if created:
            self.activities.record(lead.id, NEW_LEAD, None, [{"name": "Source Type", "value": "Web service API"}])
            return
        for name, (old, new) in changed.items():
            attrs = [
                {"name": "New Value", "value": new},
                {"name": "Old Value", "value": old},
                {"name": "Reason", "value": "Web service API"},
                {"name": "Source", "value": "Web service API"},
            ]
            self.activities.record(lead.id, CHANGE_DATA_VALUE, self.leads.fields[name].display_name, attrs)

    def sync_leads(self, body: Any) -> list[dict[str, Any]]:
        with self.lock:
            records = input_list(body)
            action = body.get("action") or "createOrUpdate"
            if action not in ACTIONS:
                raise InvalidData(f"Invalid action '{action}'")
            lookup = body.get("lookupField") or "email"
            if lookup not in ("email", "id"):
                raise FieldNotSupported(f"Field '{lookup}' not supported")
            return [_result(*self.leads.upsert(r, action=action, key=lookup)) for r in records]

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

    def describe2_leads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "name": "API Lead",
                    "searchableFields": [[f] for f in self.leads.searchable],
                    "fields": [f.describe2() for f in self.leads.fields.values()],
                }
            ]

    def describe_leads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.describe() for f in self.leads.fields.values()]

    def create_lead_fields(self, body: Any) -> list[dict[str, Any]]:
        with self.lock:
            out: list[dict[str, Any]] = []
            for raw in input_list(body, MAX_LEAD_FIELDS_PER_CALL):
                name = raw.get("name") if isinstance(raw, Mapping) else None
                missing = [
                    k for k in ("name", "displayName", "dataType") if not isinstance(raw, Mapping) or not raw.get(k)
                ]
                if missing:
                    reason = Reason("1002", f"Missing value for required parameter '{missing[0]}'")
                    out.append({"name": name, "status": "skipped", "reasons": [reason.as_json()]})
                    continue
                try:
                    self.leads.add_field(str(name), str(raw["dataType"]), str(raw["displayName"]), raw.get("length"))
                except MarketoError as err:
                    out.append({"name": name, "status": "skipped", "reasons": [err.reason().as_json()]})
                    continue
                out.append({"name": name, "status": "created"})
            return out

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
                    out.append({"seq": seq, **_result("skipped", None, [CrmEnabled().reason()])})
                    continue
                out.append({"seq": seq, **_result(*self.companies.upsert(record, action=action, key=key))})
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

    # -- static lists and campaigns -------------------------------------------------------------------

    def _list(self, list_id: int) -> StaticList:
        found = self.lists.get(list_id)
        if found is None:
            raise ObjectNotFound(f"Static list {list_id} not found")
        return found

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
            if self.campaigns is not None and campaign_id not in self.campaigns:
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

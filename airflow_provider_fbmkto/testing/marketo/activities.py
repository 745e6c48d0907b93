"""Activity types (standard and custom, draft/approved) and the activity log with paging-token reads.

Custom activities are never de-duplicated: the same input sent twice makes two activities.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_fbmkto.testing.marketo.errors import (
    AlreadyExists,
    Blank,
    BusinessRuleViolation,
    InvalidData,
    MaxActivityTypes,
    MaxFields,
    ObjectNotFound,
    Reason,
)
from airflow_provider_fbmkto.testing.marketo.fields import (
    DATA_TYPES,
    coerce,
    decode_token,
    encode_token,
    invalid_value,
    iso,
    parse_datetime,
)

MAX_BATCH = 300
MAX_ATTRIBUTES = 20
FIRST_CUSTOM_TYPE_ID = 100001

#: A few of Marketo's built-in activity types: (id, name, primary attribute, attribute names).
STANDARD_TYPES: list[tuple[int, str, tuple[str, str] | None, tuple[str, ...]]] = [
    (1, "Visit Webpage", ("Webpage ID", "integer"), ("Client IP Address", "Query Parameters", "Webpage URL")),
    (2, "Fill Out Form", ("Webform ID", "integer"), ("Client IP Address", "Form Fields")),
    (3, "Click Link", ("Link ID", "integer"), ("Client IP Address", "Referrer URL")),
    (6, "Send Email", ("Mailing ID", "integer"), ("Campaign Run ID", "Step ID")),
    (7, "Email Delivered", ("Mailing ID", "integer"), ("Campaign Run ID", "Step ID")),
    (10, "Open Email", ("Mailing ID", "integer"), ("Device", "Platform")),
    (11, "Click Email", ("Mailing ID", "integer"), ("Device", "Link")),
    (12, "New Lead", None, ("Source Type", "Created Date")),
    (13, "Change Data Value", ("Attribute Name", "integer"), ("New Value", "Old Value", "Reason", "Source")),
    (22, "Change Score", ("Score Name", "integer"), ("Change Value", "New Value", "Old Value")),
    (24, "Add to List", ("List ID", "integer"), ("Source",)),
    (25, "Remove from List", ("List ID", "integer"), ("Source",)),
    (46, "Interesting Moment", None, ("Type", "Description")),
]
STANDARD_IDS = frozenset(t[0] for t in STANDARD_TYPES)
NEW_LEAD, CHANGE_DATA_VALUE = 12, 13


@dataclass(frozen=True, slots=True)
class Attribute:
    api_name: str
    name: str
    data_type: str
    description: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "apiName": self.api_name,
            "name": self.name,
            "description": self.description,
            "dataType": self.data_type,
        }


@dataclass(frozen=True, slots=True)
class TypeVersion:
    name: str
    description: str
    trigger_name: str
    filter_name: str
    primary: Attribute
    attributes: tuple[Attribute, ...] = ()


@dataclass
class CustomType:
    id: int
    api_name: str
    created_at: datetime
    updated_at: datetime
    draft: TypeVersion | None = None
    approved: TypeVersion | None = None

    def as_json(self, *, prefer_draft: bool = True) -> dict[str, Any]:
        version = (self.draft or self.approved) if prefer_draft else (self.approved or self.draft)
        assert version is not None
        return {
            "id": self.id,
            "apiName": self.api_name,
            "name": version.name,
            "description": version.description,
            "triggerName": version.trigger_name,
            "filterName": version.filter_name,
            "primaryAttribute": version.primary.as_json(),
            "attributes": [a.as_json() for a in version.attributes],
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "status": "draft" if version is self.draft else "approved",
        }


@dataclass
class Activity:
    id: int
    lead_id: int
    activity_date: datetime
    type_id: int
    primary_attribute_value: Any
    attributes: list[dict[str, Any]] = field(default_factory=list)
    guid: str = ""
    #: lead-field changes of a New Lead / Change Data Value activity: ``{id, name, newValue, oldValue}``
    changes: list[dict[str, Any]] = field(default_factory=list)

    def lead_change_json(self, fields: frozenset[str]) -> dict[str, Any]:
        """The Lead Changes feed's form: ``fields[]`` holds the requested fields' changes."""
        return {
            "id": self.id,
            "marketoGUID": self.guid,
            "leadId": self.lead_id,
            "activityDate": iso(self.activity_date),
            "activityTypeId": self.type_id,
            "fields": [dict(c) for c in self.changes if c["name"] in fields],
            "attributes": [dict(a) for a in self.attributes],
        }

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "marketoGUID": self.guid,
            "leadId": self.lead_id,
            "activityDate": iso(self.activity_date),
            "activityTypeId": self.type_id,
            "attributes": [dict(a) for a in self.attributes],
        }
        if self.primary_attribute_value is not None:
            out["primaryAttributeValue"] = self.primary_attribute_value
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _attribute(raw: Any, where: str) -> Attribute:
    """An attribute of a type: ``apiName`` and ``name`` required; ``dataType`` optional (Marketo's default: string)."""
    if not isinstance(raw, Mapping):
        raise InvalidData(f"{where} must be an object with apiName and name")
    for key in ("apiName", "name"):
        if not raw.get(key):
            raise Blank(f"{where}.{key} cannot be blank")
    data_type = raw.get("dataType") or "string"
    if data_type not in DATA_TYPES:
        raise InvalidData(f"Invalid dataType '{data_type}' in {where}")
    return Attribute(str(raw["apiName"]), str(raw["name"]), str(data_type), str(raw.get("description", "")))


class ActivityStore:
    """Custom activity types and every activity written, kept in ``(activityDate, id)`` order."""

    def __init__(self, clock: Callable[[], datetime], *, max_custom_types: int = 10) -> None:
        self._clock = clock
        self.max_custom_types = max_custom_types
        self.reset()

    def reset(self) -> None:
        self.types: dict[str, CustomType] = {}
        self.activities: list[Activity] = []
        self._keys: list[tuple[datetime, int]] = []
        self._next_type_id = FIRST_CUSTOM_TYPE_ID
        self._next_id = 1

    # -- types ----------------------------------------------------------------------------------------

    def by_id(self, type_id: int) -> CustomType | None:
        return next((t for t in self.types.values() if t.id == type_id), None)

    def get_type(self, api_name: str) -> CustomType:
        found = self.types.get(api_name)
        if found is None:
            raise ObjectNotFound(f"Activity type '{api_name}' not found")
        return found

    def all_types_json(self) -> list[dict[str, Any]]:
        """``/activities/types.json``: built-in types, then approved custom types."""
        out: list[dict[str, Any]] = []
        for type_id, name, primary, attrs in STANDARD_TYPES:
            item: dict[str, Any] = {"id": type_id, "name": name, "description": name}
            if primary:
                item["primaryAttribute"] = {"name": primary[0], "dataType": primary[1]}
            item["attributes"] = [{"name": a, "dataType": "string"} for a in attrs]
            out.append(item)
        for ctype in self.types.values():
            if ctype.approved is not None:
                version = ctype.approved
                out.append(
                    {
                        "id": ctype.id,
                        "apiName": ctype.api_name,
                        "name": version.name,
                        "description": version.description,
                        "primaryAttribute": {
                            "name": version.primary.name,
                            "apiName": version.primary.api_name,
                            "dataType": version.primary.data_type,
                        },
                        "attributes": [
                            {"name": a.name, "apiName": a.api_name, "dataType": a.data_type} for a in version.attributes
                        ],
                    }
                )
        return out

    def create_type(self, body: Any) -> CustomType:
        if not isinstance(body, Mapping):
            raise InvalidData("Request body must be a JSON object")
        for key in ("apiName", "name", "triggerName", "filterName"):
            if not body.get(key):
                raise Blank(f"{key} cannot be blank")
        if not body.get("primaryAttribute"):
            raise Blank("primaryAttribute cannot be blank")
        api_name = str(body["apiName"])
        if api_name in self.types:
            raise AlreadyExists(f"Activity type with apiName '{api_name}' already exists")
        for other in self.types.values():
            version = other.draft or other.approved
            assert version is not None
            for key, mine, theirs in (
                ("name", body["name"], version.name),
                ("triggerName", body["triggerName"], version.trigger_name),
                ("filterName", body["filterName"], version.filter_name),
            ):
                if str(mine).lower() == theirs.lower():
                    raise AlreadyExists(f"Activity type with {key} '{mine}' already exists")
        if len(self.types) >= self.max_custom_types:
            raise MaxActivityTypes(f"Max activity type limit reached ({self.max_custom_types})")
        primary = _attribute(body["primaryAttribute"], "primaryAttribute")
        # Marketo's create takes no secondary attributes: an ``attributes`` key (like any other key it does not
        # know) is ignored, and the attributes are added with ``.../attributes/create.json``.
        now = self._clock()
        version = TypeVersion(
            str(body["name"]),
            str(body.get("description", "")),
            str(body["triggerName"]),
            str(body["filterName"]),
            primary,
        )
        ctype = CustomType(self._next_type_id, api_name, now, now, draft=version)
        self._next_type_id += 1
        self.types[api_name] = ctype
        return ctype

    def _merge_attributes(self, primary: Attribute, existing: tuple[Attribute, ...], new: Any) -> tuple[Attribute, ...]:
        if not isinstance(new, list):
            raise InvalidData("attributes must be a list")
        merged = list(existing)
        for i, raw in enumerate(new):
            attr = _attribute(raw, f"attributes[{i}]")
            taken = {a.api_name.lower() for a in merged} | {primary.api_name.lower()}
            if attr.api_name.lower() in taken:
                raise AlreadyExists(f"Attribute with apiName '{attr.api_name}' already exists")
            merged.append(attr)
        if len(merged) > MAX_ATTRIBUTES:
            raise MaxFields(f"Max field limit reached: at most {MAX_ATTRIBUTES} attributes per activity type")
        return tuple(merged)

    def add_attributes(self, api_name: str, body: Any) -> CustomType:
        ctype = self.get_type(api_name)
        if not isinstance(body, Mapping) or not body.get("attributes"):
            raise Blank("attributes cannot be blank")
        base = ctype.draft or ctype.approved
        assert base is not None
        ctype.draft = replace(
            base, attributes=self._merge_attributes(base.primary, base.attributes, body["attributes"])
        )
        ctype.updated_at = self._clock()
        return ctype

    def approve(self, api_name: str) -> CustomType:
        ctype = self.get_type(api_name)
        if ctype.draft is None:
            raise BusinessRuleViolation(f"Activity type '{api_name}' has no draft to approve")
        ctype.approved, ctype.draft = ctype.draft, None
        ctype.updated_at = self._clock()
        return ctype

    # -- activities -----------------------------------------------------------------------------------

    def _insert(self, activity: Activity) -> Activity:
        key = (activity.activity_date, activity.id)
        at = bisect.bisect_right(self._keys, key)
        self._keys.insert(at, key)
        self.activities.insert(at, activity)
        return activity

    def record(
        self,
        lead_id: int,
        type_id: int,
        primary: Any,
        attributes: list[dict[str, Any]],
        changes: list[dict[str, Any]] | None = None,
    ) -> Activity:
        """Log a built-in activity (New Lead, Change Data Value, list changes) dated now."""
        activity = Activity(
            self._next_id, lead_id, self._clock(), type_id, primary, attributes, str(self._next_id), changes or []
        )
        self._next_id += 1
        return self._insert(activity)

    def add_one(self, record: Any, lead_exists: Callable[[int], bool]) -> dict[str, Any]:
        """Write one custom activity; the per-record result (``added``, or ``skipped`` with ``errors``)."""
        reason = self._check(record, lead_exists)
        if isinstance(reason, Reason):
            return {"status": "skipped", "errors": [reason.as_json()]}
        lead_id, when, type_id, primary, attrs = reason
        activity = Activity(self._next_id, lead_id, when, type_id, primary, attrs, str(uuid.uuid4()))
        self._next_id += 1
        self._insert(activity)
        return {"id": activity.id, "marketoGUID": activity.guid, "status": "added"}

    def _check(self, record: Any, lead_exists: Callable[[int], bool]) -> Reason | tuple[Any, ...]:
        if not isinstance(record, Mapping):
            return Reason("1003", "Invalid data")
        for key in ("leadId", "activityDate", "activityTypeId", "primaryAttributeValue"):
            if record.get(key) is None or record.get(key) == "":
                return Reason("1002", f"Missing value for required parameter '{key}'")
        try:
            lead_id, type_id = int(record["leadId"]), int(record["activityTypeId"])
        except (TypeError, ValueError):
            return Reason("1003", "leadId and activityTypeId must be integers")
        try:
            when = parse_datetime(record["activityDate"], require_offset=True)
        except (TypeError, ValueError):
            return Reason("1001", f"Invalid value '{record['activityDate']}'. Required of type 'datetime' with offset")
        if type_id in STANDARD_IDS:
            return Reason("1003", f"Activity type {type_id} is not a custom activity type")
        ctype = self.by_id(type_id)
        if ctype is None:
            return Reason("1013", f"Activity type {type_id} not found")
        version = ctype.approved
        if version is None:
            return Reason("1013", f"Activity type {type_id} ('{ctype.api_name}') is a draft; approve it first")
        if not lead_exists(lead_id):
            return Reason("1004", "Lead not found")
        try:
            primary = coerce(record["primaryAttributeValue"], version.primary.data_type)
        except (TypeError, ValueError):
            return invalid_value(record["primaryAttributeValue"], version.primary.data_type)
        raw_attrs = record.get("attributes") or []
        if not isinstance(raw_attrs, list):
            return Reason("1003", "attributes must be a list")
        known = {a.api_name: a for a in version.attributes}
        attrs: list[dict[str, Any]] = []
        for raw in raw_attrs:
            name = raw.get("apiName") or raw.get("name") if isinstance(raw, Mapping) else None
            if not name or name not in known:
                return Reason("1006", f"Field '{name}' not found")
            try:
                value = coerce(raw.get("value"), known[name].data_type)
            except (TypeError, ValueError):
                return invalid_value(raw.get("value"), known[name].data_type)
            attrs.append({"name": known[name].name, "apiName": name, "value": value})
        return (lead_id, when, type_id, primary, attrs)

    def paging_token(self, since: datetime) -> str:
        return encode_token("act", _micros(since), 0)

    def page(
        self, token: str, *, type_ids: set[int], lead_ids: set[int] | None, batch_size: int
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """Activities after the token's cursor: ``(items, nextPageToken, moreResult)``."""
        found, next_token, more = self._scan(
            token,
            lambda a: a.type_id in type_ids and (lead_ids is None or a.lead_id in lead_ids),
            batch_size,
        )
        return [a.as_json() for a in found], next_token, more

    def lead_changes(
        self, token: str, *, fields: frozenset[str], lead_ids: set[int] | None, batch_size: int
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """``/activities/leadchanges.json``: New Lead activities and the Change Data Value activities of
        ``fields`` after the token's cursor, ``(items, nextPageToken, moreResult)``."""

        def matches(a: Activity) -> bool:
            if lead_ids is not None and a.lead_id not in lead_ids:
                return False
            if a.type_id == NEW_LEAD:
                return True
            return a.type_id == CHANGE_DATA_VALUE and any(c["name"] in fields for c in a.changes)

        found, next_token, more = self._scan(token, matches, batch_size)
        return [a.lead_change_json(fields) for a in found], next_token, more

    def _scan(
        self, token: str, matches: Callable[[Activity], bool], batch_size: int
    ) -> tuple[list[Activity], str, bool]:
        parts = decode_token(token, "act")
        try:
            micros, last_id = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            raise InvalidData(f"Invalid nextPageToken '{token}'") from None
        cursor = (_from_micros(micros), last_id)
        start = bisect.bisect_right(self._keys, cursor)
        items: list[Activity] = []
        more = False
        last_key = cursor
        for i in range(start, len(self.activities)):
            activity = self.activities[i]
            hit = matches(activity)
            if hit and len(items) == batch_size:
                more = True
                break
            last_key = self._keys[i]
            if hit:
                items.append(activity)
        return items, encode_token("act", _micros(last_key[0]), last_key[1]), more

"""Leads and companies: field schemas, createOrUpdate with per-record outcomes, reads by filter with paging."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_fbmkto.testing.marketo.errors import (
    AlreadyExists,
    Blank,
    FieldNotFound,
    FieldNotSupported,
    InvalidData,
    Reason,
)
from airflow_provider_fbmkto.testing.marketo.fields import (
    DATA_TYPES,
    FieldDef,
    coerce,
    decode_token,
    encode_token,
    invalid_value,
    iso,
)

MAX_BATCH = 300
ACTIONS = ("createOrUpdate", "createOnly", "updateOnly")
#: Called after a lead changes: (lead, changed {field: (old, new)}, created).
ChangeHook = Callable[["Entity", dict[str, tuple[Any, Any]], bool], None]


@dataclass
class Entity:
    """A lead or company: id, field values, timestamps."""

    id: int
    values: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: the lead partition a lead lives in (``leadPartitionId``); None for companies
    partition_id: int | None = None

    def get(self, name: str) -> Any:
        if name == "id":
            return self.id
        if name == "leadPartitionId":
            return self.partition_id
        if name == "createdAt":
            return iso(self.created_at) if self.created_at else None
        if name == "updatedAt":
            return iso(self.updated_at) if self.updated_at else None
        return self.values.get(name)

    def render(self, names: Iterable[str]) -> dict[str, Any]:
        """The wire form: requested fields, ``id`` always, ``null`` values left out (as Marketo does)."""
        out: dict[str, Any] = {"id": self.id}
        for name in names:
            value = self.get(name)
            if value is not None:
                out[name] = value
        return out


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


def record_result(status: str, entity: Entity | None, reasons: list[Reason]) -> dict[str, Any]:
    """One per-record result: ``{id, status, reasons}`` (``id`` and ``reasons`` only when there are)."""
    out: dict[str, Any] = {}
    if entity is not None:
        out["id"] = entity.id
    out["status"] = status
    if reasons:
        out["reasons"] = [r.as_json() for r in reasons]
    return out


class EntityStore:
    """One Marketo object type (leads or companies) with its field schema.

    :param key_fields: lookup/dedupe fields whose values are matched case-insensitively.
    :param searchable: filterType values accepted by reads.
    """

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        kind: str,
        standard: list[FieldDef],
        searchable: tuple[str, ...],
        default_fields: tuple[str, ...],
    ) -> None:
        self._clock = clock
        self.kind = kind
        self._standard = standard
        self.searchable = searchable
        self.default_fields = default_fields
        self.fields: dict[str, FieldDef] = {}
        self.items: dict[int, Entity] = {}
        self.on_change: ChangeHook | None = None
        self.reset()

    def reset(self) -> None:
        self.fields = {f.name: f for f in self._standard}
        self.items = {}
        self._next_id = 1

    # -- schema ---------------------------------------------------------------------------------------

    def add_field(self, name: str, data_type: str, display_name: str | None = None, length: int | None = None) -> None:
        """Add a custom field; raise 1017 when it exists (case-insensitive) and 1003 for a bad type."""
        if not name or not name[0].isalpha() or not name.replace("_", "").isalnum():
            raise InvalidData(f"Invalid field name '{name}'")
        if data_type not in DATA_TYPES:
            raise InvalidData(f"Invalid dataType '{data_type}'")
        if any(existing.lower() == name.lower() for existing in self.fields):
            raise AlreadyExists(f"Field '{name}' already exists")
        next_id = max(f.id for f in self.fields.values()) + 1
        self.fields[name] = FieldDef(next_id, name, display_name or name, data_type, length, True, True)

    def check_fields(self, names: Iterable[str]) -> list[str]:
        names = [n for n in names if n]
        for name in names:
            if name not in self.fields:
                raise FieldNotFound(f"Field '{name}' not found")
        return names

    # -- writes ---------------------------------------------------------------------------------------

    def find(self, key: str, value: Any) -> list[Entity]:
        if key == "id":
            try:
                return [self.items[int(value)]] if int(value) in self.items else []
            except (TypeError, ValueError):
                return []
        wanted = str(value).lower()
        return [e for e in self.items.values() if str(e.values.get(key, "")).lower() == wanted]

    def upsert(
        self,
        record: Any,
        *,
        action: str,
        key: str,
        partition_id: int | None = None,
        create_refused: Reason | None = None,
    ) -> tuple[str, Entity | None, list[Reason]]:
        """Apply one input record: ``(status, entity, reasons)`` with status created/updated/skipped.

        :param partition_id: the lead partition a created lead goes into (an updated one stays where it is).
        :param create_refused: when set, a record that would create is skipped with this reason instead.
        """
        if not isinstance(record, Mapping) or not record:
            return "skipped", None, [Reason("1003", "Invalid data")]
        for name in record:
            if name not in self.fields:
                return "skipped", None, [Reason("1006", f"Field '{name}' not found")]
        for name in record:
            if name != "id" and not self.fields[name].updateable:  # createdAt, updatedAt, leadPartitionId
                return "skipped", None, [Reason("1011", f"Field '{name}' not supported")]
            if name == "id" and key != "id":
                return "skipped", None, [Reason("1003", "Field 'id' is only accepted when looking up by id")]
        values: dict[str, Any] = {}
        for name, raw in record.items():
            if name == "id":
                continue
            try:
                values[name] = coerce(raw, self.fields[name].data_type)
            except (ValueError, TypeError):
                return "skipped", None, [invalid_value(raw, self.fields[name].data_type)]
        lookup = record.get(key)
        if lookup is None or lookup == "":
            return "skipped", None, [Reason("1003", f"Value for lookup field '{key}' not found")]
        matches = self.find(key, lookup)
        if len(matches) > 1:
            return "skipped", None, [Reason("1007", "Multiple records match the lookup criteria")]
        now = self._clock()
        if matches:
            if action == "createOnly":
                code, noun = ("1005", "Lead") if self.kind == "lead" else ("1017", "Company")
                return "skipped", None, [Reason(code, f"{noun} already exists")]
            entity = matches[0]
            changed = {n: (entity.values.get(n), v) for n, v in values.items() if entity.values.get(n) != v}
            entity.values.update(values)
            if changed:
                entity.updated_at = now
                if self.on_change:
                    self.on_change(entity, changed, False)
            return "updated", entity, []
        if action == "updateOnly" or key == "id":
            noun = "Lead" if self.kind == "lead" else "Company"
            return "skipped", None, [Reason("1004" if self.kind == "lead" else "1013", f"{noun} not found")]
        if create_refused is not None:
            return "skipped", None, [create_refused]
        entity = Entity(self._next_id, values, now, now, partition_id)
        self._next_id += 1
        self.items[entity.id] = entity
        if self.on_change:
            self.on_change(entity, {n: (None, v) for n, v in values.items()}, True)
        return "created", entity, []

    # -- reads ----------------------------------------------------------------------------------------

    def query(
        self,
        *,
        filter_type: str | None,
        filter_values: list[str],
        fields: list[str] | None,
        batch_size: int,
        token: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Entities matching a filter, one page; returns ``(items, nextPageToken or None)``."""
        if not filter_type:
            raise Blank("filterType cannot be blank")
        if filter_type not in self.searchable:
            raise FieldNotSupported(f"Field '{filter_type}' not supported")
        if not filter_values:
            raise Blank("filterValues cannot be blank")
        if len(filter_values) > MAX_BATCH:
            raise InvalidData(f"Too many filterValues ({len(filter_values)}), the limit is {MAX_BATCH}")
        if not 1 <= batch_size <= MAX_BATCH:
            raise InvalidData(f"batchSize must be between 1 and {MAX_BATCH}")
        names = self.check_fields(fields) if fields else list(self.default_fields)
        offset = 0
        if token:
            parts = decode_token(token, self.kind)
            offset = int(parts[0]) if parts and parts[0].isdigit() else 0
        matched: dict[int, Entity] = {}
        for value in filter_values:
            for entity in self.find(filter_type, value):
                matched[entity.id] = entity
        ordered = [matched[i] for i in sorted(matched)]
        page = ordered[offset : offset + batch_size]
        next_token = encode_token(self.kind, offset + batch_size) if offset + batch_size < len(ordered) else None
        return [e.render(names) for e in page], next_token


def lead_store(clock: Callable[[], datetime], standard: list[FieldDef]) -> EntityStore:
    return EntityStore(
        clock,
        kind="lead",
        standard=standard,
        searchable=("id", "email", "externalCompanyId"),
        default_fields=("email", "updatedAt", "createdAt", "lastName", "firstName"),
    )


def company_store(clock: Callable[[], datetime], standard: list[FieldDef]) -> EntityStore:
    return EntityStore(
        clock,
        kind="company",
        standard=standard,
        searchable=("id", "externalCompanyId", "company"),
        default_fields=("externalCompanyId", "company", "createdAt", "updatedAt"),
    )

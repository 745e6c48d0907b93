"""The lead rules of :class:`~.models.MarketoModel`: sync with actions and partitions, schema, merges.

A mixin: the model owns the state (``leads``, ``activities``, ``lists``, the lock); this module holds what
Marketo does with leads. Lead partitions: every instance has ``Default`` (id 1); more are configured with
``partitions=(...)``. ``partitionName`` on ``POST /leads.json`` names the partition new leads go into; an
updated lead stays in its own partition (Marketo's "Update Lead Partition" call is the only way to move one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.testing.marketo.activities import CHANGE_DATA_VALUE, NEW_LEAD
from airflow_provider_fbmkto.testing.marketo.errors import (
    FieldNotFound,
    FieldNotSupported,
    InvalidData,
    MarketoError,
    Reason,
)
from airflow_provider_fbmkto.testing.marketo.records import ACTIONS, EntityStore, input_list, record_result

if TYPE_CHECKING:
    from airflow_provider_fbmkto.testing.marketo.activities import ActivityStore
    from airflow_provider_fbmkto.testing.marketo.records import Entity

MAX_LEAD_FIELDS_PER_CALL = 100
API_SOURCE = "Web service API"
#: what a change made by a person in Marketo's UI is logged with
PERSON_SOURCE = "Marketo"
DEFAULT_PARTITION = "Default"


@dataclass
class StaticList:
    id: int
    name: str
    members: dict[int, None] = field(default_factory=dict)


def partition_ids(names: Iterable[str]) -> dict[str, int]:
    """``{name: id}``: ``Default`` is always id 1, the others follow in the order given (names are exact)."""
    ordered = [DEFAULT_PARTITION, *(n for n in names if n != DEFAULT_PARTITION)]
    for name in ordered:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"partition names must be non-empty strings, not {name!r}")
    if len(set(ordered)) != len(ordered):
        raise ValueError(f"partition names must be unique: {ordered}")
    return {name: i for i, name in enumerate(ordered, start=1)}


class LeadRules:
    """``POST /leads.json``, lead describe/field creation, lead partitions and merges (mixed into the model)."""

    lock: threading.RLock
    clock: Callable[[], datetime]
    leads: EntityStore
    activities: ActivityStore
    lists: dict[int, StaticList]
    #: lead partitions ``{name: id}``
    partitions: dict[str, int]
    #: creating a lead without ``partitionName`` is refused (1009) when the instance has several partitions
    require_partition_name: bool

    def _lead_changed(
        self, lead: Entity, changed: dict[str, tuple[Any, Any]], created: bool, source: str = API_SOURCE
    ) -> None:
        """Log the lead's "New Lead" (12) or one "Change Data Value" (13) per changed field, old and new value."""
        if created:
            attrs = [{"name": "Source Type", "value": source}]
            self.activities.record(lead.id, NEW_LEAD, None, attrs)
            return
        for name, (old, new) in changed.items():
            attrs = [
                {"name": "New Value", "value": new},
                {"name": "Old Value", "value": old},
                {"name": "Reason", "value": source},
                {"name": "Source", "value": source},
            ]
            spec = self.leads.fields[name]
            change = {"id": spec.id, "name": name, "newValue": new, "oldValue": old}
            self.activities.record(lead.id, CHANGE_DATA_VALUE, spec.display_name, attrs, [change])

    def edit_lead(self, lead_id: int | None, values: Mapping[str, Any]) -> Entity:
        """A person in Marketo creates (``lead_id`` None) or edits a lead: logged like any change, source "Marketo".

        :raises KeyError: no such lead. :raises MarketoError: an unknown or read-only field, or a bad value.
        """
        with self.lock:
            record = {k: v for k, v in values.items() if k != "id"}
            for name in record:
                if name not in self.leads.fields:
                    raise FieldNotFound(f"Field '{name}' not found")
                if not self.leads.fields[name].updateable:
                    raise FieldNotSupported(f"Field '{name}' not supported")
            if lead_id is not None and lead_id not in self.leads.items:
                raise KeyError(f"no lead {lead_id}")
            hook, self.leads.on_change = (
                self.leads.on_change,
                (lambda e, changed, created: self._lead_changed(e, changed, created, PERSON_SOURCE)),
            )
            try:
                if lead_id is None:
                    status, entity, reasons = self.leads.upsert(
                        record, action="createOnly", key="email", partition_id=self.partitions[DEFAULT_PARTITION]
                    )
                else:
                    status, entity, reasons = self.leads.upsert(
                        {**record, "id": lead_id}, action="updateOnly", key="id"
                    )
            finally:
                self.leads.on_change = hook
            if entity is None:
                raise InvalidData("; ".join(r.message for r in reasons) or f"lead not {status}")
            return entity

    def _partition_for(self, body: Mapping[str, Any]) -> tuple[int | None, Reason | None, Reason | None]:
        """``(partition id for new leads, reason refusing every record, reason refusing creations)``."""
        name = body.get("partitionName")
        if name is None or name == "":
            if self.require_partition_name and len(self.partitions) > 1:
                return None, None, Reason("1009", "Partition name must be specified")
            return self.partitions[DEFAULT_PARTITION], None, None
        if not isinstance(name, str) or name not in self.partitions:
            return None, Reason("1008", f"Access denied to partition '{name}'"), None
        return self.partitions[name], None, None

    def sync_leads(self, body: Any) -> list[dict[str, Any]]:
        with self.lock:
            records = input_list(body)
            action = body.get("action") or "createOrUpdate"
            if action not in ACTIONS:
                raise InvalidData(f"Invalid action '{action}'")
            lookup = body.get("lookupField") or "email"
            if lookup not in ("email", "id"):
                raise FieldNotSupported(f"Field '{lookup}' not supported")
            partition_id, refused, create_refused = self._partition_for(body)
            if refused is not None:
                return [record_result("skipped", None, [refused]) for _ in records]
            return [
                record_result(
                    *self.leads.upsert(
                        r, action=action, key=lookup, partition_id=partition_id, create_refused=create_refused
                    )
                )
                for r in records
            ]

    def lead_partitions(self) -> list[dict[str, Any]]:
        """``GET /rest/v1/leads/partitions.json``."""
        with self.lock:
            return [
                {"id": i, "name": n, "description": "Initial system lead partition" if i == 1 else n}
                for n, i in self.partitions.items()
            ]

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

    def merge_leads(self, winner: int, loser: int) -> None:
        """Merge ``loser`` into ``winner`` (a Marketo user or another integration does this).

        The loser disappears: its id is then unknown (reads find nothing, activity writes and list changes
        answer 1004). Its activities and static-list memberships move to the winner; the winner keeps its own
        field values and partition, and its ``updatedAt`` moves.

        :raises KeyError: either lead does not exist. :raises ValueError: winner and loser are the same lead.
        """
        with self.lock:
            for lead_id in (winner, loser):
                if lead_id not in self.leads.items:
                    raise KeyError(f"no lead {lead_id}")
            if winner == loser:
                raise ValueError("winner and loser must be two different leads")
            for activity in self.activities.activities:
                if activity.lead_id == loser:
                    activity.lead_id = winner
            for static in self.lists.values():
                if loser in static.members:
                    del static.members[loser]
                    static.members.setdefault(winner, None)
            del self.leads.items[loser]
            self.leads.items[winner].updated_at = self.clock()

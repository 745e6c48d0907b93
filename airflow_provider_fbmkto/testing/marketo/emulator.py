"""``MarketoEmulator``: the model, the ASGI app and a real HTTP server on ``127.0.0.1``, plus test helpers."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from airflow_provider_fbmkto.testing.marketo.app import CallRecord, MarketoApp
from airflow_provider_fbmkto.testing.marketo.control import ControlHandlers
from airflow_provider_fbmkto.testing.marketo.faults import Fault, new_queue, validate, validate_message
from airflow_provider_fbmkto.testing.marketo.models import MarketoModel
from airflow_provider_fbmkto.testing.marketo.routes import IDENTITY_PATH
from airflow_provider_fbmkto.testing.server import ThreadedServer


class MarketoEmulator:
    """A strict Marketo REST instance for tests, the demo and the benchmark (see the package docstring).

    :param port: TCP port on 127.0.0.1; 0 picks a free one (read :attr:`url` after :meth:`start`).
    :param clock: returns the current aware UTC time; drives token life, rate window, quota day and exports.
    :param token_ttl: access token life in seconds.
    :param rate_limit: calls per ``window_seconds`` sliding window (606 beyond).
    :param max_concurrency: calls in flight at once (615 beyond).
    :param daily_quota: calls per US-Central day (607 beyond).
    :param crm_synced: ``False``; ``True``/``"response"`` refuses company writes with a response-level 1018;
        ``"record"`` skips each company record with 1018.
    :param latency: seconds every admitted REST call stays in flight before it is served.
    :param bulk_min_poll_seconds: the export status polling pace a client should keep; faster polls are
        served but counted by :meth:`too_fast_status_polls`.
    :param bulk_step_seconds: clock seconds each export state (Queued, Processing) lasts.
    :param company_fields: custom company fields ``{name: dataType}``; default the provider's ``fbPaymentTerms``,
        ``fbOutstandingBalance``, ``fbInvoiceCount``, ``fbPaymentStatus``, ``fbLastPaymentDate``,
        ``fbAverageDaysToPay``. Pass ``{}`` for standard fields only.
    :param lists: static lists to create, ``{id: name}``.
    :param campaigns: requestable smart campaigns ``{id: name}``; any other campaign id is 1013 (as on a real
        instance, where a campaign exists only once a Marketo user built it).
    :param updated_at_filter_supported: ``False`` answers 1035 to bulk exports filtered on ``updatedAt``.
    :param count_rejected_calls: calls refused with 606/615 still count in the window and quota (default).
    :param timeout_fault_seconds: stall of a ``timeout`` fault; ``slow_fault_seconds`` that of ``slow``.
    :param partitions: lead partitions besides ``Default`` (id 1), e.g. ``("EMEA",)``; ids follow in order.
    :param require_partition_name: with more than one partition, creating a lead without ``partitionName`` is
        skipped with 1009 (an API user whose role spans partitions); otherwise new leads go to ``Default``.
    :param api_user: the API-only user owning the custom service: the identity answer's ``scope`` and this
        client's ``userId`` in ``stats/usage.json`` (default ``<client id>@<munchkin id>.mktorest.com``).
    :param bulk_daily_bytes: the day's bulk export allocation (Marketo's default 500 MB); past it 1029.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        clock: Callable[[], datetime] | None = None,
        client_id: str = "mkto-client-id",
        client_secret: str = "mkto-client-secret",  # noqa: S107 - the emulator's well-known test secret
        munchkin_id: str = "123-ABC-456",
        token_ttl: int = 3600,
        rate_limit: int = 100,
        window_seconds: float = 20.0,
        max_concurrency: int = 10,
        daily_quota: int = 50_000,
        crm_synced: bool | str = False,
        latency: float = 0.0,
        bulk_min_poll_seconds: float = 60.0,
        bulk_step_seconds: float = 1.0,
        company_fields: Mapping[str, str] | None = None,
        lists: Mapping[int, str] | None = None,
        campaigns: Mapping[int, str] | None = None,
        updated_at_filter_supported: bool = True,
        count_rejected_calls: bool = True,
        max_custom_activity_types: int = 10,
        timeout_fault_seconds: float = 30.0,
        slow_fault_seconds: float = 2.0,
        partitions: tuple[str, ...] = (),
        require_partition_name: bool = False,
        api_user: str | None = None,
        bulk_daily_bytes: int = 500 * 1024 * 1024,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.munchkin_id = munchkin_id
        self.window_seconds = window_seconds
        self.bulk_min_poll_seconds = bulk_min_poll_seconds
        self.model = MarketoModel(
            clock=clock,
            token_ttl=token_ttl,
            rate_limit=rate_limit,
            window_seconds=window_seconds,
            max_concurrency=max_concurrency,
            daily_quota=daily_quota,
            count_rejected_calls=count_rejected_calls,
            crm_synced=crm_synced,
            company_fields=company_fields,
            lists=lists,
            campaigns=campaigns,
            bulk_step_seconds=bulk_step_seconds,
            updated_at_filter_supported=updated_at_filter_supported,
            max_custom_activity_types=max_custom_activity_types,
            partitions=partitions,
            require_partition_name=require_partition_name,
            api_user=api_user or f"{client_id}@{munchkin_id}.mktorest.com",
            bulk_daily_bytes=bulk_daily_bytes,
        )
        self.faults = new_queue()
        self.app = MarketoApp(
            self.model,
            self.faults,
            client_id=client_id,
            client_secret=client_secret,
            munchkin_id=munchkin_id,
            latency=latency,
            timeout_seconds=timeout_fault_seconds,
            slow_seconds=slow_fault_seconds,
            control=ControlHandlers(self),
        )
        self._server = ThreadedServer(self.app, host=host, port=port)

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the REST base a connection's host points at)."""
        return self._server.url

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.model.clock

    def start(self) -> MarketoEmulator:
        self.app.stopping.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        self.app.stopping.set()
        self._server.stop()

    def __enter__(self) -> MarketoEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Start and block until interrupted (``fbmkto emulate marketo``)."""
        self.start()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def reset(self) -> None:
        """Back to the constructor's state: records, types, tokens, usage, faults and the call log."""
        self.model.reset()
        self.faults.clear()
        self.app.reset()

    def conn_json(self, **extra: object) -> str:
        """An ``AIRFLOW_CONN_*`` value (JSON form) for this emulator; ``extra`` adds connection extras."""
        return json.dumps(
            {
                "conn_type": "marketo",
                "host": self.url,
                "login": self.client_id,
                "password": self.client_secret,
                "extra": {"window_seconds": self.window_seconds, **extra},
            }
        )

    # -- observation ----------------------------------------------------------------------------------

    @property
    def calls(self) -> list[CallRecord]:
        """Every request served (identity and REST; control calls are not logged), in completion order."""
        return self.app.calls

    @property
    def max_in_flight(self) -> int:
        """The most REST calls observed in flight at once (including ones refused with 615)."""
        return self.app.max_in_flight

    def rest_calls(self) -> list[CallRecord]:
        return [c for c in self.app.calls if c.path != IDENTITY_PATH]

    def inject_fault(
        self, kind: str, count: int = 1, path_prefix: str | None = None, message: str | None = None
    ) -> None:
        """Make the next ``count`` calls matching ``path_prefix`` fail with ``kind`` (see :mod:`.faults`).

        :param message: the error message instead of the code's standard one (e.g. 1029's three variants).
        """
        kind, count, path_prefix = validate(kind, count, path_prefix)
        message = validate_message(kind, message)
        if kind == "export_failed":
            with self.model.lock:
                self.model.exports.fail_next += count
            return
        self.faults.add(Fault(kind, count, path_prefix, message))

    # -- state views and set-up helpers ---------------------------------------------------------------

    def leads(self) -> list[dict[str, Any]]:
        return self.model.lead_views()

    def companies(self) -> list[dict[str, Any]]:
        return self.model.company_views()

    def activity_types(self) -> list[dict[str, Any]]:
        """Custom activity types as ``GET /activities/external/types.json`` lists them."""
        with self.model.lock:
            return [t.as_json() for t in self.model.activities.types.values()]

    def activities(self, lead_id: int | None = None, *, include_standard: bool = False) -> list[dict[str, Any]]:
        """Activities in ``(activityDate, id)`` order; custom ones only unless ``include_standard``."""
        with self.model.lock:
            return [
                a.as_json()
                for a in self.model.activities.activities
                if (lead_id is None or a.lead_id == lead_id) and (include_standard or a.type_id > 100000)
            ]

    def edit_lead(self, lead_id: int | None, values: dict[str, Any]) -> dict[str, Any]:
        """A person in Marketo creates (``lead_id`` None) or edits a lead; logged as New Lead / Change Data Value
        with source "Marketo", like every change. Returns the lead's values."""
        entity = self.model.edit_lead(lead_id, values)
        with self.model.lock:
            return {"id": entity.id, **entity.values}

    def edit_company(self, external_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """A person in Marketo edits a company (by ``externalCompanyId``). Returns the company's values."""
        entity = self.model.edit_company(external_id, values)
        with self.model.lock:
            return {"id": entity.id, **entity.values}

    def merge_leads(self, winner: int, loser: int) -> None:
        """Merge lead ``loser`` into ``winner`` as a Marketo user would (see :meth:`.MarketoModel.merge_leads`)."""
        self.model.merge_leads(winner, loser)

    def spend_other_usage(self, calls: int, user_id: str = "other-integration") -> int:
        """Count ``calls`` made today by another integration (API user ``user_id``) of this instance.

        They share the daily quota and show in ``GET /rest/v1/stats/usage.json``; calls past the quota are
        refused by Marketo and not counted. Returns the calls counted.
        """
        return self.model.limits.spend_other(calls, user_id)

    def usage_today(self) -> dict[str, Any]:
        """Today's calls (US Central day) per API user and in total, as ``stats/usage.json`` reports them."""
        day, users = self.model.limits.usage_by_user()
        return {"date": day.isoformat(), "total": sum(users.values()), "users": users}

    def list_members(self, list_id: int) -> list[int]:
        with self.model.lock:
            found = self.model.lists.get(list_id)
            if found is None:
                raise KeyError(f"no static list {list_id}")
            return sorted(found.members)

    def create_list(self, name: str, list_id: int | None = None) -> int:
        return self.model.create_list(name, list_id)

    def create_campaign(self, name: str, campaign_id: int | None = None) -> int:
        return self.model.create_campaign(name, campaign_id)

    def campaign_requests(self) -> list[dict[str, Any]]:
        with self.model.lock:
            return [
                {
                    "campaignId": r.campaign_id,
                    "leadIds": list(r.lead_ids),
                    "tokens": dict(r.tokens),
                    "at": r.at.isoformat(),
                }
                for r in self.model.campaign_requests
            ]

    def add_lead_field_direct(self, name: str, data_type: str = "string", display_name: str | None = None) -> None:
        self.model.add_lead_field(name, data_type, display_name)

    def add_company_field(self, name: str, data_type: str = "string") -> None:
        self.model.add_company_field(name, data_type)

    def create_activity_type_direct(
        self,
        api_name: str,
        name: str | None = None,
        *,
        primary_attribute: tuple[str, str, str] = ("invoiceNumber", "Invoice Number", "string"),
        attributes: list[tuple[str, str, str]] | None = None,
        approve: bool = True,
    ) -> int:
        """Create (and by default approve) a custom activity type; return its id.

        :param primary_attribute: ``(apiName, name, dataType)``; ``attributes`` likewise.
        """
        label = name or api_name
        body = {
            "apiName": api_name,
            "name": label,
            "triggerName": f"{label} happens",
            "filterName": f"{label} happened",
            "primaryAttribute": dict(zip(("apiName", "name", "dataType"), primary_attribute, strict=True)),
        }
        extra = [dict(zip(("apiName", "name", "dataType"), a, strict=True)) for a in attributes or []]
        with self.model.lock:
            ctype = self.model.activities.create_type(body)
            if extra:
                self.model.activities.add_attributes(api_name, {"attributes": extra})
            if approve:
                self.model.activities.approve(api_name)
            return ctype.id

    def status_poll_intervals(self, export_id: str) -> list[float]:
        """Clock seconds between consecutive status polls of one export."""
        with self.model.lock:
            job = self.model.exports.jobs.get(export_id)
            polls = list(job.polls) if job else []
        return [(b - a).total_seconds() for a, b in itertools.pairwise(polls)]

    def too_fast_status_polls(self, export_id: str) -> int:
        """How many status polls came sooner than ``bulk_min_poll_seconds`` after the previous one."""
        return sum(1 for gap in self.status_poll_intervals(export_id) if gap < self.bulk_min_poll_seconds)

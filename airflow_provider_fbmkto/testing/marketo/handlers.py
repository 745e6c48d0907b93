"""Request parsing and Marketo's envelope (moto's ``responses.py``): one method per REST endpoint.

Handlers only translate: HTTP parameters in, a model call, the envelope out. Rules live in the model.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.responses import Response

from airflow_provider_fbmkto.testing.marketo.errors import (
    Blank,
    FileNotReady,
    InvalidDateFormat,
    MarketoError,
    ObjectNotFound,
)
from airflow_provider_fbmkto.testing.marketo.fields import parse_datetime
from airflow_provider_fbmkto.testing.marketo.models import MarketoModel


@dataclass
class ApiRequest:
    """A parsed request. ``params`` merges the URL query and, for ``POST`` with ``_method=GET``, the form."""

    method: str
    path: str
    params: dict[str, str]
    multi: dict[str, list[str]]
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)


@dataclass
class Envelope:
    """A successful answer: ``result`` (``None`` leaves the key out), paging fields when set."""

    result: list[Any] | None = None
    more_result: bool | None = None
    next_page_token: str | None = None


def request_id(clock: Callable[[], datetime]) -> str:
    """Marketo-style ``<hex>#<hex>`` request id."""
    return f"{secrets.token_hex(2)}#{int(clock().timestamp() * 1000):x}"


def envelope_json(env: Envelope, rid: str) -> dict[str, Any]:
    out: dict[str, Any] = {"requestId": rid}
    if env.result is not None:
        out["result"] = env.result
    out["success"] = True
    if env.next_page_token is not None:
        out["nextPageToken"] = env.next_page_token
    if env.more_result is not None:
        out["moreResult"] = env.more_result
    out["warnings"] = []
    return out


def error_json(err: MarketoError, rid: str) -> dict[str, Any]:
    return {"requestId": rid, "success": False, "errors": [err.reason().as_json()]}


def record_codes(result: list[Any] | None) -> list[str]:
    """Codes of skipped records (``reasons`` or, for custom activities, ``errors``)."""
    codes: list[str] = []
    for item in result or []:
        if isinstance(item, Mapping):
            for reason in list(item.get("reasons") or []) + list(item.get("errors") or []):
                if isinstance(reason, Mapping) and "code" in reason:
                    codes.append(str(reason["code"]))
    return codes


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _ranged(content: bytes, header: str | None, media_type: str) -> Response:
    """Serve ``content`` whole (200) or one byte range (206, or 416 when unsatisfiable)."""
    total = len(content)
    found = _RANGE.match(header.strip()) if header else None
    if not found or (not found.group(1) and not found.group(2)):
        return Response(content, media_type=media_type, headers={"Accept-Ranges": "bytes"})
    first, last = found.group(1), found.group(2)
    if first:
        start, end = int(first), min(int(last), total - 1) if last else total - 1
    else:
        start, end = max(0, total - int(last)), total - 1
    if start >= total or start > end:
        return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{total}"})
    headers = {"Content-Range": f"bytes {start}-{end}/{total}", "Accept-Ranges": "bytes"}
    return Response(content[start : end + 1], status_code=206, media_type=media_type, headers=headers)


class RestHandlers:
    """One method per route of :data:`~.routes.REST_ROUTES`; each returns an :class:`Envelope` or a raw response."""

    def __init__(self, model: MarketoModel, *, client_id: str) -> None:
        self.model = model
        self.client_id = client_id

    # -- leads ----------------------------------------------------------------------------------------

    def get_leads(self, req: ApiRequest) -> Envelope:
        items, token = self.model.query("lead", req.params)
        return Envelope(items, next_page_token=token)

    def get_lead(self, req: ApiRequest) -> Envelope:
        params = {"filterType": "id", "filterValues": req.path_params["id"], "fields": req.params.get("fields", "")}
        items, _ = self.model.query("lead", params)
        return Envelope(items)

    def sync_leads(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.sync_leads(req.body))

    def describe_leads(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.describe_leads())

    def describe2_leads(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.describe2_leads())

    def create_lead_fields(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.create_lead_fields(req.body))

    # -- companies ------------------------------------------------------------------------------------

    def get_companies(self, req: ApiRequest) -> Envelope:
        items, token = self.model.query("company", req.params)
        return Envelope(items, next_page_token=token)

    def sync_companies(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.sync_companies(req.body))

    def describe_companies(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.describe_companies())

    # -- activity types and activities ----------------------------------------------------------------

    def activity_types(self, req: ApiRequest) -> Envelope:
        with self.model.lock:
            return Envelope(self.model.activities.all_types_json())

    def external_types(self, req: ApiRequest) -> Envelope:
        with self.model.lock:
            return Envelope([t.as_json() for t in self.model.activities.types.values()])

    def create_external_type(self, req: ApiRequest) -> Envelope:
        with self.model.lock:
            return Envelope([self.model.activities.create_type(req.body).as_json()])

    def describe_external_type(self, req: ApiRequest) -> Envelope:
        with self.model.lock:
            ctype = self.model.activities.get_type(req.path_params["api_name"])
            draft = req.params.get("draft", "").lower() == "true"
            if draft and ctype.draft is None:
                raise ObjectNotFound(f"Activity type '{ctype.api_name}' has no draft")
            if not draft and ctype.approved is None:
                raise ObjectNotFound(f"Activity type '{ctype.api_name}' has no approved version (use draft=true)")
            return Envelope([ctype.as_json(prefer_draft=draft)])

    def add_attributes(self, req: ApiRequest) -> Envelope:
        with self.model.lock:
            return Envelope([self.model.activities.add_attributes(req.path_params["api_name"], req.body).as_json()])

    def approve_external_type(self, req: ApiRequest) -> Envelope:
        with self.model.lock:
            return Envelope([self.model.activities.approve(req.path_params["api_name"]).as_json()])

    def add_activities(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.add_activities(req.body))

    def paging_token(self, req: ApiRequest) -> Envelope:
        raw = req.params.get("sinceDatetime")
        if not raw:
            raise Blank("sinceDatetime cannot be blank")
        try:
            since = parse_datetime(raw, require_offset=False)
        except ValueError:
            raise InvalidDateFormat(f"Invalid date format '{raw}'") from None
        with self.model.lock:
            return Envelope(next_page_token=self.model.activities.paging_token(since))

    def get_activities(self, req: ApiRequest) -> Envelope:
        items, token, more = self.model.activity_page(req.params)
        # Marketo leaves "result" out of a page without activities.
        return Envelope(items or None, more_result=more, next_page_token=token)

    def lead_changes(self, req: ApiRequest) -> Envelope:
        items, token, more = self.model.lead_changes_page(req.params)
        return Envelope(items or None, more_result=more, next_page_token=token)

    # -- static lists and campaigns -------------------------------------------------------------------

    def get_list(self, req: ApiRequest) -> Envelope:
        return Envelope([self.model.get_list(int(req.path_params["id"]))])

    def get_campaign(self, req: ApiRequest) -> Envelope:
        return Envelope([self.model.get_campaign(int(req.path_params["id"]))])

    def list_members(self, req: ApiRequest) -> Envelope:
        items, token = self.model.list_page(int(req.path_params["id"]), req.params)
        return Envelope(items, next_page_token=token)

    def _list_ids(self, req: ApiRequest) -> list[Any]:
        if req.body is not None:
            records = req.body.get("input") if isinstance(req.body, Mapping) else None
            if not isinstance(records, list):
                raise Blank("input cannot be blank")
            return [r.get("id") if isinstance(r, Mapping) else r for r in records]
        return list(req.multi.get("id", []))

    def add_to_list(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.change_list(int(req.path_params["id"]), self._list_ids(req), add=True))

    def remove_from_list(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.change_list(int(req.path_params["id"]), self._list_ids(req), add=False))

    def trigger_campaign(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.trigger_campaign(int(req.path_params["id"]), req.body))

    def usage(self, req: ApiRequest) -> Envelope:
        # Every API user of the instance today (US Central), this call included, as Marketo lists them.
        day, users = self.model.limits.usage_by_user()
        listed = [{"userId": user, "count": count} for user, count in users.items()]
        return Envelope([{"date": day.isoformat(), "total": sum(users.values()), "users": listed}])

    def lead_partitions(self, req: ApiRequest) -> Envelope:
        return Envelope(self.model.lead_partitions())

    # -- bulk export ----------------------------------------------------------------------------------

    def export_create(self, req: ApiRequest) -> Envelope:
        return Envelope([self.model.export("create", body=req.body).as_json()])

    def export_enqueue(self, req: ApiRequest) -> Envelope:
        return Envelope([self.model.export("enqueue", req.path_params["export_id"]).as_json()])

    def export_status(self, req: ApiRequest) -> Envelope:
        return Envelope([self.model.export("status", req.path_params["export_id"]).as_json()])

    def export_cancel(self, req: ApiRequest) -> Envelope:
        return Envelope([self.model.export("cancel", req.path_params["export_id"]).as_json()])

    def export_list(self, req: ApiRequest) -> Envelope:
        wanted = {s for s in req.params.get("status", "").split(",") if s}
        with self.model.lock:
            self.model.exports.advance()
            jobs = [j.as_json() for j in self.model.exports.jobs.values() if not wanted or j.status in wanted]
        return Envelope(jobs)

    def export_file(self, req: ApiRequest) -> Response:
        job = self.model.export("file", req.path_params["export_id"])
        if job.status != "Completed" or job.file is None:
            raise FileNotReady(f"Export job '{job.id}' is {job.status}; its file exists once it is Completed")
        media = "text/csv" if job.format == "CSV" else "text/plain"
        return _ranged(job.file, req.headers.get("range"), media)

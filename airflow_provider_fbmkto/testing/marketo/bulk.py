"""Bulk lead export jobs: Created -> Queued -> Processing -> Completed (or Failed/Cancelled), driven by the clock.

Each state advances after ``step_seconds`` of clock time; at most ``max_processing`` jobs process at once and
at most ``max_queued`` wait in the queue. The file is built when the job completes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_fbmkto.testing.marketo.errors import (
    Blank,
    BusinessRuleViolation,
    ExportAlreadyQueued,
    ExportDailyQuotaExceeded,
    ExportQueueFull,
    FieldNotFound,
    InvalidData,
    ObjectNotFound,
    UnsupportedFilterType,
)
from airflow_provider_fbmkto.testing.marketo.fields import iso, parse_datetime
from airflow_provider_fbmkto.testing.marketo.limits import quota_day

MAX_RANGE = timedelta(days=31)
DELIMITERS = {"CSV": ",", "TSV": "\t", "SSV": " "}
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})
#: Rows to export: (field names, start, end, filter kind) -> list of rows (lists of cell values).
RowSource = Callable[[list[str], datetime, datetime, str], list[list[Any]]]


@dataclass
class ExportJob:
    id: str
    fields: list[str]
    format: str
    filter_kind: str
    start: datetime
    end: datetime
    headers: dict[str, str]
    created_at: datetime
    status: str = "Created"
    since: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    file: bytes | None = None
    records: int = 0
    error: str | None = None
    queue_seq: int = 0
    polls: list[datetime] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exportId": self.id,
            "format": self.format,
            "status": self.status,
            "createdAt": iso(self.created_at),
        }
        for key, value in (("queuedAt", self.queued_at), ("startedAt", self.started_at)):
            if value is not None:
                out[key] = iso(value)
        if self.finished_at is not None:
            out["finishedAt"] = iso(self.finished_at)
        if self.status == "Completed" and self.file is not None:
            out["numberOfRecords"] = self.records
            out["fileSize"] = len(self.file)
            out["fileChecksum"] = hashlib.sha256(self.file).hexdigest()
        if self.error:
            out["errorMsg"] = self.error
        return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class BulkExports:
    """The instance's export jobs."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        rows: RowSource,
        *,
        step_seconds: float,
        updated_at_filter_supported: bool = True,
        max_processing: int = 2,
        max_queued: int = 10,
        daily_bytes: int = 500 * 1024 * 1024,
    ) -> None:
        self._clock = clock
        self._rows = rows
        self.step = timedelta(seconds=step_seconds)
        self.updated_at_filter_supported = updated_at_filter_supported
        self.max_processing = max_processing
        self.max_queued = max_queued
        self.daily_bytes = daily_bytes
        self.reset()

    def reset(self) -> None:
        self.jobs: dict[str, ExportJob] = {}
        self.fail_next = 0
        self._queue_seq = 0

    def get(self, export_id: str) -> ExportJob:
        self.advance()
        job = self.jobs.get(export_id)
        if job is None:
            raise ObjectNotFound(f"Export job '{export_id}' not found")
        return job

    def create(self, body: Any, known_fields: Mapping[str, object]) -> ExportJob:
        if not isinstance(body, Mapping):
            raise InvalidData("Request body must be a JSON object")
        fields = body.get("fields")
        if not fields or not isinstance(fields, list):
            raise Blank("fields cannot be blank")
        for name in fields:
            if name not in known_fields:
                raise FieldNotFound(f"Field '{name}' not found")
        fmt = str(body.get("format") or "CSV").upper()
        if fmt not in DELIMITERS:
            raise InvalidData(f"Invalid format '{fmt}'; use CSV, TSV or SSV")
        flt = body.get("filter")
        if not isinstance(flt, Mapping) or not flt:
            raise Blank("filter cannot be blank")
        if len(flt) != 1:
            raise InvalidData("Exactly one filter type is allowed")
        kind, spec = next(iter(flt.items()))
        if kind not in ("updatedAt", "createdAt"):
            raise UnsupportedFilterType(f"Unsupported filter type for target subscription: {kind}")
        if kind == "updatedAt" and not self.updated_at_filter_supported:
            raise UnsupportedFilterType("Unsupported filter type for target subscription: updatedAt")
        if not isinstance(spec, Mapping) or not spec.get("startAt") or not spec.get("endAt"):
            raise Blank(f"{kind}.startAt and {kind}.endAt cannot be blank")
        try:
            start, end = parse_datetime(spec["startAt"]), parse_datetime(spec["endAt"])
        except (TypeError, ValueError):
            raise InvalidData(f"{kind}.startAt/endAt must be ISO 8601 date-times with an offset") from None
        if end < start:
            raise InvalidData(f"{kind}.endAt is before startAt")
        if end - start > MAX_RANGE:
            raise InvalidData(f"{kind} date range exceeds the maximum of 31 days")
        headers = body.get("columnHeaderNames") or {}
        if not isinstance(headers, Mapping):
            raise InvalidData("columnHeaderNames must be an object")
        self._check_daily_quota()
        job = ExportJob(str(uuid.uuid4()), list(fields), fmt, kind, start, end, dict(headers), self._clock())
        job.since = job.created_at
        self.jobs[job.id] = job
        return job

    def enqueue(self, export_id: str) -> ExportJob:
        job = self.get(export_id)
        if job.status != "Created":
            raise ExportAlreadyQueued()
        # Marketo's queue limit is "inclusive of currently exporting jobs".
        queued = sum(1 for j in self.jobs.values() if j.status in ("Queued", "Processing"))
        if queued >= self.max_queued:
            raise ExportQueueFull()
        self._check_daily_quota()
        now = self._clock()
        job.status, job.queued_at, job.since = "Queued", now, now
        self._queue_seq += 1
        job.queue_seq = self._queue_seq
        return job

    def _check_daily_quota(self) -> None:
        """1029 "Export daily quota exceeded": no job is created or enqueued until midnight US Central."""
        if self.bytes_today() >= self.daily_bytes:
            raise ExportDailyQuotaExceeded()

    def cancel(self, export_id: str) -> ExportJob:
        job = self.get(export_id)
        if job.status in TERMINAL:
            raise BusinessRuleViolation(f"Export job in state {job.status} cannot be cancelled")
        job.status, job.finished_at = "Cancelled", self._clock()
        return job

    def poll(self, export_id: str) -> ExportJob:
        job = self.get(export_id)
        job.polls.append(self._clock())
        return job

    def file(self, export_id: str) -> ExportJob:
        return self.get(export_id)

    def bytes_today(self) -> int:
        today = quota_day(self._clock())
        return sum(
            len(j.file or b"")
            for j in self.jobs.values()
            if j.status == "Completed" and j.finished_at and quota_day(j.finished_at) == today
        )

    def advance(self) -> None:
        """Apply every state change due by now, in time order (FIFO queue, ``max_processing`` slots)."""
        now = self._clock()
        last = datetime.min.replace(tzinfo=now.tzinfo)
        while True:
            events: list[tuple[datetime, int, ExportJob]] = []
            processing = [j for j in self.jobs.values() if j.status == "Processing"]
            events += [(j.since + self.step, 0, j) for j in processing if j.since]
            if len(processing) < self.max_processing:
                queued = sorted(
                    (j for j in self.jobs.values() if j.status == "Queued" and j.queued_at),
                    key=lambda j: j.queue_seq,
                )
                if queued and queued[0].since:
                    events.append((max(queued[0].since + self.step, last), 1, queued[0]))
            due = sorted((e for e in events if e[0] <= now), key=lambda e: (e[0], e[1]))
            if not due:
                return
            at, kind, job = due[0]
            last = at
            if kind == 1:
                job.status, job.started_at, job.since = "Processing", at, at
            else:
                self._finish(job, at)

    def _finish(self, job: ExportJob, at: datetime) -> None:
        job.finished_at = at
        if self.fail_next > 0:
            self.fail_next -= 1
            job.status, job.error = "Failed", "Export job failed (injected fault)"
            return
        rows = self._rows(job.fields, job.start, job.end, job.filter_kind)
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=DELIMITERS[job.format], lineterminator="\n")
        writer.writerow([job.headers.get(f, f) for f in job.fields])
        writer.writerows([[_cell(v) for v in row] for row in rows])
        job.file = buf.getvalue().encode()
        job.records = len(rows)
        job.status = "Completed"

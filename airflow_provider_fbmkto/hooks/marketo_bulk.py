"""Bulk lead export calls of :class:`~airflow_provider_fbmkto.hooks.marketo.MarketoHook` (a mixin).

Create (≤31 days of ``updatedAt``), enqueue, status, cancel and the streamed CSV download. Marketo's limits:
2 jobs processing and 10 queued per instance (processing ones included), 500 MB of export files a day
(resets at midnight US Central), files kept about 7 days. Status polls belong to the deferrable sensor's
trigger (``triggers/marketo.py``), which reads answers with the same verdict as the hook.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from airflow_provider_fbmkto.hooks.marketo_base import MarketoBaseHook
from airflow_provider_fbmkto.hooks.marketo_types import (
    MAX_EXPORT_DAYS,
    BulkExportError,
    BulkExportStatus,
    ExportAlreadyQueued,
    dumps,
    first_result,
    iso_utc,
)


class MarketoBulkExportMixin(MarketoBaseHook):
    """Bulk lead export: create, enqueue (reusing a job already queued), status, cancel, download."""

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
        """Queue a created export; returns its status.

        ``1029`` is read by its message: "Too many jobs in queue" is waited out and sent again; "Job already
        queued" (an earlier try queued it and its answer was lost, or this call was resent after a timeout) is
        not an error: the job is reused and its current status answered; "Export daily quota exceeded" raises
        :class:`ExportQuotaExhausted` at once (nothing is queued until midnight US Central).
        """
        path = f"/bulk/v1/leads/export/{export_id}/enqueue.json"
        try:
            # Idempotent: a resend of a queued job answers "Job already queued", which is handled below.
            body = self._call("POST", path, idempotent=True)
        except ExportAlreadyQueued:
            self.log.info("Marketo export %s is queued already; reusing it", export_id)
            return self.export_status(export_id)
        return BulkExportStatus.from_marketo(first_result(body))

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

"""MarketoBulkExportSensor: wait for a Marketo bulk lead export to complete (deferrable by default)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_types import BulkExportError, ExportState
from airflow_provider_fbmkto.triggers.marketo import MarketoBulkExportTrigger


class MarketoBulkExportSensor(BaseSensorOperator):
    """Succeed when the bulk export ``export_id`` is Completed; fail when it Failed or was Cancelled.

    Deferred (the default), it waits in the triggerer without a worker slot. On timeout the export is
    cancelled (so it stops using the instance's export quota) and the task fails. Returns the export id.

    :param export_id: the export job (from ``MarketoHook.create_lead_export`` + ``enqueue_export``).
    :param marketo_conn_id: the ``marketo`` connection.
    :param poll_interval: seconds between status polls; Marketo asks for no more than once a minute.
    :param deferrable: wait in the triggerer (default) instead of a worker.
    """

    template_fields: Sequence[str] = ("export_id", "marketo_conn_id")

    def __init__(
        self,
        *,
        export_id: str,
        marketo_conn_id: str = "marketo_default",
        poll_interval: float = 60.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.export_id = export_id
        self.marketo_conn_id = marketo_conn_id
        self.poll_interval = float(poll_interval)
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> MarketoHook:
        return MarketoHook(self.marketo_conn_id)

    def poke(self, context: Any) -> bool:
        status = self.hook.export_status(self.export_id)
        self.log.info("Marketo export %s is %s", self.export_id, status.state.value)
        if status.state is ExportState.COMPLETED:
            return True
        if status.state.is_terminal():
            raise BulkExportError(f"Marketo export {self.export_id} ended {status.state.value}: {status.error or ''}")
        return False

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            super().execute(context)
            return self.export_id
        self.defer(
            trigger=MarketoBulkExportTrigger(
                export_id=self.export_id,
                marketo_conn_id=self.marketo_conn_id,
                poll_interval=self.poll_interval,
                timeout_at=self._deadline(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _deadline(self) -> float:
        return time.time() + self.timeout

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger: return the export id, or cancel (on timeout) and fail."""
        event = event or {}
        status = event.get("status")
        message = str(event.get("message") or f"Marketo export sensor ended with status {status!r}")
        if status == "success":
            self.log.info("%s", message)
            return self.export_id
        if status == "timeout":
            try:
                self.hook.cancel_export(self.export_id)
                message += "; the export was cancelled"
            except Exception as exc:  # the export may have finished meanwhile; the timeout still fails the task
                self.log.warning("could not cancel Marketo export %s: %s", self.export_id, exc)
            raise AirflowSensorTimeout(message)
        raise AirflowException(message)

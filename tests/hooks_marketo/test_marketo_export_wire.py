"""Bulk lead export: hook calls, the deferrable sensor and its async trigger, against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred

from airflow_provider_fbmkto.hooks.marketo import MarketoHook, export_windows
from airflow_provider_fbmkto.hooks.marketo_types import BulkExportError, BulkExportFilterUnsupported, ExportState
from airflow_provider_fbmkto.sensors.marketo import MarketoBulkExportSensor
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator
from airflow_provider_fbmkto.triggers.marketo import MarketoBulkExportTrigger

POLL = 0.2

MakeMarketo = Callable[..., MarketoEmulator]


def run_trigger(trigger: MarketoBulkExportTrigger, timeout: float = 15.0) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        gen = trigger.run()
        event = await asyncio.wait_for(anext(gen), timeout)
        with pytest.raises(StopAsyncIteration):  # exactly one event, then the generator returns
            await asyncio.wait_for(anext(gen), 1)
        payload: dict[str, Any] = event.payload
        return payload

    return asyncio.run(first_event())


@pytest.fixture
def exporting(make_marketo: MakeMarketo) -> MarketoEmulator:
    return make_marketo(bulk_step_seconds=0.3, bulk_min_poll_seconds=POLL)


def _created_export(hook: MarketoHook, n: int = 25) -> str:
    hook.upsert_leads([{"email": f"e{i}@example.com", "firstName": f"F{i}"} for i in range(n)])
    now = datetime.now(timezone.utc)
    return hook.create_lead_export(["id", "email", "firstName"], now - timedelta(days=1), now + timedelta(hours=1))


def test_export_runs_through_its_states_via_the_trigger_and_rows_download(exporting: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _created_export(hook)
    assert hook.export_status(export_id).state is ExportState.CREATED
    assert hook.enqueue_export(export_id).state is ExportState.QUEUED

    event = run_trigger(MarketoBulkExportTrigger(export_id, poll_interval=POLL, timeout_at=time.time() + 30))

    assert event["status"] == "success"
    assert (event["export_id"], event["export_status"]) == (export_id, "Completed")
    assert "25 records" in event["message"]
    gaps = exporting.status_poll_intervals(export_id)[1:]  # the first gap follows the test's own poll
    assert len(gaps) >= 1  # it polled Queued/Processing before Completed
    assert min(gaps) >= POLL
    rows = list(hook.download_export(export_id))
    assert sorted(r["email"] for r in rows) == sorted(f"e{i}@example.com" for i in range(25))
    assert set(rows[0]) == {"id", "email", "firstName"}


def test_a_failed_export_ends_in_an_error_event(exporting: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _created_export(hook, 2)
    exporting.inject_fault("export_failed")
    hook.enqueue_export(export_id)
    event = run_trigger(MarketoBulkExportTrigger(export_id, poll_interval=POLL))
    assert (event["status"], event["export_status"]) == ("error", "Failed")
    assert "injected fault" in event["message"]
    with pytest.raises(BulkExportError, match="no file"):
        list(hook.download_export(export_id))


def test_the_trigger_times_out_at_its_deadline(make_marketo: MakeMarketo) -> None:
    make_marketo(bulk_step_seconds=600, bulk_min_poll_seconds=POLL)
    hook = MarketoHook()
    export_id = _created_export(hook, 1)
    hook.enqueue_export(export_id)
    started = time.monotonic()
    event = run_trigger(MarketoBulkExportTrigger(export_id, poll_interval=POLL, timeout_at=time.time() + 0.7))
    assert (event["status"], event["export_status"]) == ("timeout", None)
    assert 0.6 <= time.monotonic() - started < 5


def test_the_trigger_recovers_from_transient_errors_and_expired_tokens(exporting: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _created_export(hook, 3)
    hook.enqueue_export(export_id)
    exporting.inject_fault("503", path_prefix="/bulk/v1/leads/export")
    exporting.inject_fault("602", path_prefix="/bulk/v1/leads/export")
    event = run_trigger(MarketoBulkExportTrigger(export_id, poll_interval=POLL))
    assert event["status"] == "success"
    statuses = [c for c in exporting.rest_calls() if c.path.endswith("/status.json")]
    assert statuses[0].status == 503
    assert statuses[1].codes == ["602"]


def test_the_trigger_reports_bad_credentials_without_the_secret(
    make_marketo: MakeMarketo, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_marketo()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MARKETO_DEFAULT", emu.conn_json().replace('"mkto-client-secret"', '"wrong-secret-123"')
    )
    event = run_trigger(MarketoBulkExportTrigger("any-id", poll_interval=POLL))
    assert event["status"] == "error"
    assert "HTTP 401 from identity" in event["message"]
    assert "wrong-secret-123" not in str(event)


def test_trigger_serialize_round_trip() -> None:
    trigger = MarketoBulkExportTrigger("abc-123", "marketo_x", poll_interval=90, timeout_at=1_900_000_000.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_fbmkto.triggers.marketo.MarketoBulkExportTrigger"
    assert kwargs == {
        "export_id": "abc-123",
        "marketo_conn_id": "marketo_x",
        "poll_interval": 90.0,
        "timeout_at": 1_900_000_000.5,
    }
    assert type(trigger)(**kwargs).serialize() == (classpath, kwargs)
    aware = MarketoBulkExportTrigger("x", timeout_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert aware.serialize()[1]["timeout_at"] == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()


def test_export_window_rules(make_marketo: MakeMarketo) -> None:
    hook_emu = make_marketo(updated_at_filter_supported=False)
    hook = MarketoHook()
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="at most 31 days"):
        hook.create_lead_export(["email"], start, start + timedelta(days=32))
    assert hook_emu.rest_calls() == []
    with pytest.raises(BulkExportFilterUnsupported, match="read leads by e-mail"):
        hook.create_lead_export(["email"], start, start + timedelta(days=31))
    windows = export_windows(start, start + timedelta(days=70))
    assert [(b - a).days for a, b in windows] == [31, 31, 8]
    assert windows[0][0] == start
    assert windows[-1][1] == start + timedelta(days=70)


def test_a_full_export_queue_is_waited_out(exporting: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _created_export(hook, 1)
    exporting.inject_fault("1029", path_prefix=f"/bulk/v1/leads/export/{export_id}/enqueue.json")
    started = time.monotonic()
    assert hook.enqueue_export(export_id).state is ExportState.QUEUED
    enqueues = [c for c in exporting.rest_calls() if c.path.endswith("/enqueue.json")]
    assert [c.codes for c in enqueues] == [["1029"], []]
    assert time.monotonic() - started >= 60 * 0.05 * 0.95  # a minute, scaled like the 1 s window


def test_sensor_defers_with_primitive_kwargs_and_resumes(exporting: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _created_export(hook, 2)
    hook.enqueue_export(export_id)
    sensor = MarketoBulkExportSensor(task_id="wait", export_id=export_id, poll_interval=POLL, timeout=30)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, MarketoBulkExportTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["export_id"] == export_id
    assert kwargs["poll_interval"] == POLL
    assert time.time() < kwargs["timeout_at"] <= time.time() + 30
    assert deferred.value.method_name == "execute_complete"
    event = run_trigger(trigger)
    assert sensor.execute_complete({}, event) == export_id
    with pytest.raises(AirflowException, match="boom"):
        sensor.execute_complete({}, {"status": "error", "message": "boom", "export_id": export_id})


def test_sensor_timeout_cancels_the_export(make_marketo: MakeMarketo) -> None:
    emu = make_marketo(bulk_step_seconds=600)
    hook = MarketoHook()
    export_id = _created_export(hook, 1)
    hook.enqueue_export(export_id)
    sensor = MarketoBulkExportSensor(task_id="wait", export_id=export_id, poll_interval=POLL, timeout=1)
    with pytest.raises(AirflowSensorTimeout, match="cancelled"):
        sensor.execute_complete({}, {"status": "timeout", "message": "late", "export_id": export_id})
    assert hook.export_status(export_id).state is ExportState.CANCELLED
    assert any(c.path.endswith("/cancel.json") for c in emu.rest_calls())


def test_sensor_pokes_without_deferring(exporting: MarketoEmulator) -> None:
    hook = MarketoHook()
    export_id = _created_export(hook, 2)
    hook.enqueue_export(export_id)
    sensor = MarketoBulkExportSensor(
        task_id="wait", export_id=export_id, poll_interval=POLL, timeout=20, deferrable=False
    )
    assert sensor.execute({}) == export_id
    assert hook.export_status(export_id).state is ExportState.COMPLETED


def _reconcile_operator(tmp_path: Any) -> Any:
    from airflow_provider_fbmkto.operators.steps import MarketoReconcileLeadsOperator

    config = tmp_path / "accounts.yaml"
    config.write_text(
        "accounts:\n  - {name: acme, freshbooks_conn_id: fb_acme, marketo_conn_id: marketo_default,"
        " schedule: '@daily', start_date: '2025-01-01'}\n"
    )
    return MarketoReconcileLeadsOperator(task_id="reconcile", account="acme", config_path=str(config))


def test_reconcile_export_that_times_out_is_cancelled_and_the_task_fails(make_marketo: MakeMarketo, tmp_path) -> None:
    emu = make_marketo(bulk_step_seconds=600)
    hook = MarketoHook()
    export_id = _created_export(hook, 1)
    hook.enqueue_export(export_id)
    task = _reconcile_operator(tmp_path)
    with pytest.raises(BulkExportError, match=r"did not finish; the export was cancelled"):
        task.execute_complete({}, {"status": "timeout", "message": "did not finish", "export_id": export_id})
    assert hook.export_status(export_id).state is ExportState.CANCELLED
    assert [c.path for c in emu.rest_calls() if c.path.endswith("/cancel.json")] == [
        f"/bulk/v1/leads/export/{export_id}/cancel.json"
    ]


def test_reconcile_killed_with_its_export_started_cancels_it(make_marketo: MakeMarketo, tmp_path) -> None:
    make_marketo(bulk_step_seconds=600)
    hook = MarketoHook()
    export_id = _created_export(hook, 1)
    hook.enqueue_export(export_id)
    task = _reconcile_operator(tmp_path)
    task.on_kill()  # nothing started by this try: nothing to cancel
    assert hook.export_status(export_id).state is ExportState.QUEUED
    task._export_id = export_id  # as execute leaves it once the export is created
    task.on_kill()
    assert hook.export_status(export_id).state is ExportState.CANCELLED

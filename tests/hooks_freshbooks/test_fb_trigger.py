"""FreshBooksWebhookEventTrigger and FreshBooksWebhookEventSensor."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

from airflow_provider_fbmkto.sensors.freshbooks import FreshBooksWebhookEventSensor
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.triggers.freshbooks import FreshBooksWebhookEventTrigger

CLASSPATH = "airflow_provider_fbmkto.triggers.freshbooks.FreshBooksWebhookEventTrigger"


def _record(account: str = "acme", object_id: str = "1") -> None:
    StateDB.from_airflow().events.record(
        account,
        name="invoice.create",
        object_id=object_id,
        account_id="ACME01",
        business_id="1001",
        user_id="1",
        received_at=datetime.now(timezone.utc),
        delivery_id=f"d-{object_id}",
    )


def test_serialize_round_trip(airflow_env: Path) -> None:
    deadline = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-4)))
    trigger = FreshBooksWebhookEventTrigger(account="acme", state_conn_id="st", poll_interval=5, timeout_at=deadline)
    cls, kwargs = trigger.serialize()
    assert cls == CLASSPATH
    assert kwargs == {
        "account": "acme",
        "state_conn_id": "st",
        "poll_interval": 5.0,
        "timeout_at": "2025-06-01T16:00:00+00:00",
    }
    assert type(trigger)(**kwargs).serialize() == (cls, kwargs)


def _first_event(trigger: FreshBooksWebhookEventTrigger) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        gen = trigger.run()
        event = await asyncio.wait_for(anext(gen), 5)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(gen), 5)
        payload: dict[str, Any] = event.payload
        return payload

    return asyncio.run(main())


def test_fires_when_events_are_pending(airflow_env: Path) -> None:
    _record(object_id="1")
    _record(object_id="2")
    _record(account="other", object_id="3")
    payload = _first_event(FreshBooksWebhookEventTrigger(account="acme", poll_interval=0.05))
    assert (payload["status"], payload["account"], payload["pending"]) == ("success", "acme", 2)


def test_fires_for_an_event_that_arrives_while_waiting(airflow_env: Path) -> None:
    threading.Timer(0.3, _record).start()
    started = time.monotonic()
    payload = _first_event(FreshBooksWebhookEventTrigger(account="acme", poll_interval=0.05))
    assert payload["status"] == "success"
    assert payload["pending"] == 1
    assert time.monotonic() - started >= 0.25


def test_times_out_at_the_deadline(airflow_env: Path) -> None:
    deadline = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    payload = _first_event(FreshBooksWebhookEventTrigger(account="acme", poll_interval=0.05, timeout_at=deadline))
    assert (payload["status"], payload["pending"]) == ("timeout", 0)


def test_db_check_does_not_block_the_event_loop(airflow_env: Path) -> None:
    class SlowCheck(FreshBooksWebhookEventTrigger):
        def _pending(self) -> int:
            time.sleep(0.5)  # a slow database
            return super()._pending()

    _record()

    async def main() -> tuple[dict[str, Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        event = await asyncio.wait_for(anext(SlowCheck(account="acme").run()), 5)
        task.cancel()
        return event.payload, ticks

    payload, ticks = asyncio.run(main())
    assert payload["status"] == "success"
    assert ticks >= 20  # the loop kept running during the 0.5 s check


def test_sensor_defers_with_its_settings(airflow_env: Path) -> None:
    sensor = FreshBooksWebhookEventSensor(task_id="wait", account="acme", poke_interval=15, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, FreshBooksWebhookEventTrigger)
    _cls, kwargs = trigger.serialize()
    assert (kwargs["account"], kwargs["poll_interval"], kwargs["state_conn_id"]) == ("acme", 15.0, "fbmkto_state")
    remaining = datetime.fromisoformat(kwargs["timeout_at"]) - datetime.now(timezone.utc)
    assert timedelta(seconds=590) < remaining <= timedelta(seconds=600)
    assert deferred.value.method_name == "execute_complete"


def test_sensor_returns_at_once_when_events_are_pending(airflow_env: Path) -> None:
    _record()
    sensor = FreshBooksWebhookEventSensor(task_id="wait", account="acme")
    assert sensor.execute({}) == 1  # no deferral
    poked = FreshBooksWebhookEventSensor(task_id="w2", account="acme", deferrable=False).poke({})
    assert (poked.is_done, poked.xcom_value) == (True, 1)


def test_sensor_execute_complete(airflow_env: Path) -> None:
    sensor = FreshBooksWebhookEventSensor(task_id="wait", account="acme")
    assert sensor.execute_complete({}, {"status": "success", "account": "acme", "pending": 3}) == 3
    with pytest.raises(AirflowSensorTimeout, match="no event"):
        sensor.execute_complete({}, {"status": "timeout", "message": "no event came"})


def test_sensor_in_poke_mode(airflow_env: Path) -> None:
    _record()
    sensor = FreshBooksWebhookEventSensor(task_id="wait", account="acme", deferrable=False, poke_interval=0.01)
    assert sensor.execute({}) == 1

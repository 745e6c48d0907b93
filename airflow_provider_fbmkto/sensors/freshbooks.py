"""FreshBooksWebhookEventSensor: wait for FreshBooks webhook events of one account (deferrable by default)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID
from airflow_provider_fbmkto.triggers.freshbooks import FreshBooksWebhookEventTrigger, pending_count


class FreshBooksWebhookEventSensor(BaseSensorOperator):
    """Succeed once the webhook receiver has stored unconsumed events for ``account``.

    Deferred, it waits in the triggerer (no worker slot). Returns (XCom) the number of pending events.

    :param account: the account name (as in the accounts config and the receiver's URL).
    :param state_conn_id: Airflow connection of the state DB.
    :param poke_interval: seconds between checks (also the trigger's poll interval).
    :param deferrable: wait in the triggerer (default) instead of a worker.
    """

    template_fields: Sequence[str] = ("account", "state_conn_id")

    def __init__(
        self,
        *,
        account: str,
        state_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: float = 60.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.account = account
        self.state_conn_id = state_conn_id
        self.deferrable = deferrable

    def poke(self, context: Any) -> PokeReturnValue:
        pending = pending_count(self.state_conn_id, self.account)
        return PokeReturnValue(is_done=pending > 0, xcom_value=pending)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        ready = self.poke(context)
        if ready.is_done:
            self.log.info("%d FreshBooks webhook event(s) pending for account %s", ready.xcom_value, self.account)
            return ready.xcom_value
        timeout_at = datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        self.defer(
            trigger=FreshBooksWebhookEventTrigger(
                account=self.account,
                state_conn_id=self.state_conn_id,
                poll_interval=self.poke_interval,
                timeout_at=timeout_at,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int:
        """Resume after the trigger fired: return the pending count, or fail on timeout."""
        event = event or {}
        status = event.get("status")
        if status == "success":
            pending = int(event.get("pending") or 0)
            self.log.info("%d FreshBooks webhook event(s) pending for account %s", pending, self.account)
            return pending
        message = str(event.get("message") or f"FreshBooks webhook sensor ended with status {status!r}")
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        raise AirflowException(message)

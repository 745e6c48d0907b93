"""FreshBooksWebhookEventTrigger: fires when the state DB holds unconsumed webhook events for an account.

The webhook receiver (:mod:`airflow_provider_fbmkto.plugins.webhooks`) stores each delivery once; this trigger
polls that table from the triggerer. The check is a short synchronous DB read, so it runs in a worker thread
(``sync_to_async``) and never blocks the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID

CLASSPATH = "airflow_provider_fbmkto.triggers.freshbooks.FreshBooksWebhookEventTrigger"
#: Events counted at most per check (the count is informative; the sync reads them all).
COUNT_LIMIT = 1000


def _deadline(value: datetime | str | float | None) -> str | None:
    """An absolute deadline as an ISO-8601 UTC string (primitive, so it serializes)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc).isoformat()
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timeout_at must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(timezone.utc).isoformat()


def pending_count(state_conn_id: str, account: str) -> int:
    """Synchronous: unconsumed webhook events of ``account`` (at most :data:`COUNT_LIMIT`)."""
    from airflow_provider_fbmkto.state import StateDB

    events = StateDB.from_airflow(conn_id=state_conn_id).events
    if not events.has_pending(account):
        return 0
    return len(events.pending(account, limit=COUNT_LIMIT))


class FreshBooksWebhookEventTrigger(BaseTrigger):
    """Wait until webhook events for ``account`` are pending, or until ``timeout_at``.

    Yields exactly one event, ``{"status": "success" | "timeout", "account", "pending", "message"}``.

    :param account: account name as configured (the receiver's ``/webhooks/freshbooks/<account>``).
    :param state_conn_id: Airflow connection of the state DB.
    :param poll_interval: seconds between checks.
    :param timeout_at: absolute deadline (aware datetime, ISO string or epoch seconds); ``None`` waits forever.
    """

    def __init__(
        self,
        account: str,
        state_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 30.0,
        timeout_at: datetime | str | float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.account = account
        self.state_conn_id = state_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_at = _deadline(timeout_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "account": self.account,
                "state_conn_id": self.state_conn_id,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
            },
        )

    def _pending(self) -> int:
        return pending_count(self.state_conn_id, self.account)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.timeout_at).timestamp() if self.timeout_at else None
        check = sync_to_async(self._pending, thread_sensitive=False)
        while True:
            pending = await check()
            if pending:
                yield TriggerEvent(  # type: ignore[no-untyped-call]
                    {
                        "status": "success",
                        "account": self.account,
                        "pending": pending,
                        "message": f"{pending} FreshBooks webhook event(s) pending for account {self.account}",
                    }
                )
                return
            remaining = None if deadline is None else deadline - time.time()
            if remaining is not None and remaining <= 0:
                yield TriggerEvent(  # type: ignore[no-untyped-call]
                    {
                        "status": "timeout",
                        "account": self.account,
                        "pending": 0,
                        "message": f"no FreshBooks webhook event arrived for account {self.account} "
                        f"before {self.timeout_at}",
                    }
                )
                return
            await asyncio.sleep(self.poll_interval if remaining is None else min(self.poll_interval, remaining))

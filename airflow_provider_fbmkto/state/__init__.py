"""The state database: encrypted OAuth tokens, Marketo call budget, sync ledger, webhook events, watermarks.

Use :meth:`StateDB.from_airflow` inside Airflow (connection ``fbmkto_state``, default a SQLite file under
``$AIRFLOW_HOME/fbmkto``) or ``StateDB(url, fernet_key=...)`` anywhere else.
"""

from __future__ import annotations

from airflow_provider_fbmkto.state.budget import BudgetExhausted, CallBudget, marketo_day, next_reset
from airflow_provider_fbmkto.state.db import DEFAULT_CONN_ID, StateDB, default_sqlite_url, url_from_connection
from airflow_provider_fbmkto.state.events import WebhookEvent, WebhookEvents
from airflow_provider_fbmkto.state.ledger import KINDS, Ledger, LedgerRow, LedgerStatus, PlanResult, RowOutcome
from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.state.runs import RunLog, RunRecord
from airflow_provider_fbmkto.state.tokens import TokenLockTimeout, TokenPair, TokenStore
from airflow_provider_fbmkto.state.watermarks import Watermarks

__all__ = [
    "DEFAULT_CONN_ID",
    "KINDS",
    "BudgetExhausted",
    "CallBudget",
    "FreshBooksMirror",
    "Ledger",
    "LedgerRow",
    "LedgerStatus",
    "PlanResult",
    "RowOutcome",
    "RunLog",
    "RunRecord",
    "StateDB",
    "TokenLockTimeout",
    "TokenPair",
    "TokenStore",
    "Watermarks",
    "WebhookEvent",
    "WebhookEvents",
    "default_sqlite_url",
    "marketo_day",
    "next_reset",
    "url_from_connection",
]

"""What every sync operator shares: its account, the state DB, the run's window and staging folder."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, cast

from airflow.sdk import BaseOperator

from airflow_provider_fbmkto.exceptions import AuthError, ConfigError
from airflow_provider_fbmkto.pipeline.context import RunContext, resolve_window
from airflow_provider_fbmkto.state.db import StateDB
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.window import Window, start_of_day

EXTRACT_TASK_ID = "extract"


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


#: Errors no retry can fix, only the user: a bad config or connection, a revoked or spent FreshBooks authorization,
#: credentials Marketo rejects, a Marketo instance the preflight finds unprovisioned.
UNFIXABLE: tuple[type[Exception], ...] = (ConfigError, AuthError)
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def fail_without_retry(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` (ones no retry can fix) into Airflow's fail-at-once: the task is not retried.

    The message stays the error's own, after its class name (it names the fix); the traceback of our internals
    is left out.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None


def fails_at_once(method: F) -> F:
    """Decorate an operator's ``execute``: an :data:`UNFIXABLE` error fails the task without Airflow's retries."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fail_without_retry(*UNFIXABLE):
            return method(*args, **kwargs)

    return cast("F", wrapper)


def _flag(params: Any, name: str) -> bool:
    value = (params or {}).get(name, False)
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


class FbmktoAccountOperator(BaseOperator):
    """Base of the sync operators: one account of the accounts config file.

    :param account: the account's name in the config file.
    :param config_path: the accounts config file (``fbmkto_accounts.yaml``).
    :param state_conn_id: connection of the state DB (tokens, ledger, watermarks).
    :param extract_task_id: the task whose XCom carries the run's window and staging folder.
    """

    template_fields = ("account", "config_path")

    def __init__(
        self,
        *,
        account: str,
        config_path: str,
        state_conn_id: str = DEFAULT_CONN_ID,
        extract_task_id: str = EXTRACT_TASK_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account = account
        self.config_path = config_path
        self.state_conn_id = state_conn_id
        self.extract_task_id = extract_task_id

    @cached_property
    def account_config(self) -> AccountConfig:
        return load_config(self.config_path).account(self.account)

    @cached_property
    def state(self) -> StateDB:
        return StateDB.from_airflow(self.state_conn_id)

    def staging_dir(self, run_id: str) -> Any:
        """``<staging_url or $AIRFLOW_HOME/fbmkto/staging>/<account>/<run id>/`` as an ObjectStoragePath."""
        from airflow.sdk import ObjectStoragePath

        base = self.account_config.staging_url or f"file://{airflow_home() / 'fbmkto' / 'staging'}"
        safe_run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
        return ObjectStoragePath(base) / self.account / safe_run

    def new_run_context(self, context: Any) -> RunContext:
        """Resolve the run's window (data interval, Params, or since last success) -- done once, by extract."""
        acct = self.account_config
        now = datetime.now(timezone.utc)
        last = self.state.runs.last_success(acct.name)
        window = resolve_window(
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            params=context.get("params") or {},
            last_success_end=last.window_end if last else None,
            account_start=start_of_day(acct.start_date, acct.tz),
            now=now,
            tz=acct.tz,
        )
        return self._ctx(context, window, now)

    def _ctx(self, context: Any, window: Window, now: datetime) -> RunContext:
        params = context.get("params") or {}
        return RunContext(
            account=self.account_config,
            run_id=context["run_id"],
            window=window,
            now=now,
            dry_run=_flag(params, "dry_run"),
            replay_failed=_flag(params, "replay_failed"),
            full_refresh=_flag(params, "full_refresh"),
        )

    def extracted(self, context: Any) -> dict[str, Any]:
        """The extract task's XCom (window, staging folder, counts)."""
        value = context["ti"].xcom_pull(task_ids=self.extract_task_id)
        if not value:
            raise RuntimeError(f"task {self.extract_task_id!r} left no result; it must succeed before {self.task_id}")
        return dict(value)

    def run_context(self, context: Any) -> RunContext:
        """The run as the extract task resolved it."""
        data = self.extracted(context)
        window = Window(datetime.fromisoformat(data["window"]["start"]), datetime.fromisoformat(data["window"]["end"]))
        return self._ctx(context, window, datetime.fromisoformat(data["now"]))

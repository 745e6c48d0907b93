"""What one run of one account knows: its account config, run id, window and manual-run flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.window import Window, local_instant, to_utc


@dataclass(frozen=True, slots=True)
class RunContext:
    """One run of one account.

    :param account: the account's config.
    :param run_id: Airflow's run id (stored on ledger rows and the run log).
    :param window: the data interval ``[start, end)`` the run covers.
    :param now: the moment the run describes billing facts at (summaries "as of the run").
    :param dry_run: compute and report, write nothing to Marketo.
    :param replay_failed: also re-send rows Marketo skipped earlier (after the cause was fixed).
    :param full_refresh: re-pull every FreshBooks record and recompute every company and lead.
    """

    account: AccountConfig
    run_id: str
    window: Window
    now: datetime
    dry_run: bool = False
    replay_failed: bool = False
    full_refresh: bool = False

    @property
    def name(self) -> str:
        return self.account.name


def _parse_param_time(value: Any, field: str, tz: ZoneInfo) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return to_utc(value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc))
    try:
        return local_instant(str(value), tz)
    except ValueError:
        raise ConfigError(
            f"Param {field}={value!r} is not an ISO 8601 date or datetime (e.g. 2025-03-01 or 2025-03-01T00:00:00Z)"
        ) from None


def resolve_window(
    *,
    interval_start: datetime | None,
    interval_end: datetime | None,
    params: Mapping[str, Any],
    last_success_end: datetime | None,
    account_start: datetime,
    now: datetime,
    tz: ZoneInfo,
) -> Window:
    """The window a run covers.

    Param ``window_start``/``window_end`` win when given (a manual run with an explicit window); else the
    data interval (scheduled runs, backfills, ``airflow dags test``); else "since last success" until now
    (a manual run without a logical date), or since the account's start date for the first run. A Param
    given as a date is that day's midnight in the account's zone ``tz``; a date-time without an offset is UTC
    (:func:`~airflow_provider_fbmkto.sync.window.local_instant`).
    """
    p_start = _parse_param_time(params.get("window_start"), "window_start", tz)
    p_end = _parse_param_time(params.get("window_end"), "window_end", tz)
    if p_start or p_end:
        start = p_start or last_success_end or account_start
        end = p_end or now
    elif interval_start is not None and interval_end is not None and interval_end > interval_start:
        start, end = interval_start, interval_end
    else:
        start, end = last_success_end or account_start, now
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    if end < start and p_end and not p_start:
        since = "the end of the last successful run" if last_success_end else "the account's start_date"
        raise ConfigError(
            f"window_end ({end.isoformat()}) is before {since} ({start.isoformat()}), where a run without "
            "window_start begins; give window_start too to re-sync an earlier window"
        )
    if end < start:
        raise ConfigError(
            f"window_end ({end.isoformat()}) is before window_start ({start.isoformat()}); swap them or leave one empty"
        )
    if end - start > timedelta(days=3660):
        raise ConfigError(f"window {start.date()}..{end.date()} spans more than ten years; give a shorter window")
    return Window(start, end)

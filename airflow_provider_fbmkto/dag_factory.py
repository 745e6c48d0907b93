"""Build one DAG per configured account (``fbmkto_sync__<name>``); the DAG file calls :func:`build_dags`.

Parse-time settings come from the provider's ``[fbmkto]`` section of Airflow's configuration (declared in the
provider info, so ``airflow config list`` shows them; ``AIRFLOW__FBMKTO__<OPTION>`` sets one). The older
``FBMKTO_…`` environment variable of each option still overrides it (the demo and the tests use them).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID
from airflow_provider_fbmkto.sync.config import load_config_collecting
from airflow_provider_fbmkto.sync.config_schema import AccountConfig, AccountConfigError, config_path
from airflow_provider_fbmkto.sync.window import start_of_day

#: Pool slots the ``load`` task occupies (and so Marketo calls it sends at once) when the account names a pool:
#: half of the recommended 8-slot pool, so two accounts load at once and the pool still caps the instance's
#: concurrent calls.
LOAD_POOL_SLOTS = 4

DOC = """\
### FreshBooks → Marketo sync for account `{name}`

Each run covers its data interval `[start, end)`: FreshBooks invoices sent, payments received and invoices
gone overdue in it become Marketo activities dated at the event; the clients they touch update Marketo
companies and leads (payment health, lists). Every write is in the ledger, so reruns and overlapping
backfills write nothing twice.

* **Backfill:** `airflow backfill create --dag-id {dag_id} --from-date 2025-03-01 --to-date 2025-03-31
  --max-active-runs 1`
* **Manual run** (Trigger with config): `window_start` / `window_end` (ISO dates, read in {tz}: a date is
  that day's midnight there; default: since the last successful run), `replay_failed` (re-send rows Marketo
  skipped, after fixing the cause), `dry_run` (compute and report, write nothing), `full_refresh` (re-pull
  FreshBooks, recompute every company and lead).
* **Ledger:** `fbmkto ledger status --account {name}`, `fbmkto ledger show-failed --account {name}`.

FreshBooks connection `{fb}`, Marketo connection `{mk}`, schedule `{schedule}` ({tz}).
"""


#: Airflow config option of section ``fbmkto`` -> (the environment variable that overrides it, its default).
SETTINGS: dict[str, tuple[str, str]] = {
    "retry_delay_seconds": ("FBMKTO_RETRY_DELAY_SECONDS", "60"),
    "export_poll_seconds": ("FBMKTO_EXPORT_POLL_SECONDS", "60"),
    "event_poll_seconds": ("FBMKTO_EVENT_POLL_SECONDS", "30"),
}


def setting(option: str) -> str:
    """The value of ``[fbmkto] <option>``: its ``FBMKTO_…`` variable if set, else Airflow's config, else the default."""
    env_var, default = SETTINGS[option]
    if env_var in os.environ:
        return os.environ[env_var]
    from airflow.configuration import conf

    return str(conf.get("fbmkto", option, fallback=default))


def _params() -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "window_start": Param(
            None,
            type=["null", "string"],
            description="ISO date/time (a date: the account's midnight); default: last success",
        ),
        "window_end": Param(
            None, type=["null", "string"], description="ISO date/time (a date: the account's midnight); default: now"
        ),
        "replay_failed": Param(False, type="boolean", description="re-send ledger rows Marketo skipped"),
        "dry_run": Param(False, type="boolean", description="compute and report; write nothing to Marketo"),
        "full_refresh": Param(False, type="boolean", description="re-pull everything; recompute all companies"),
    }


def _exponential_backoff() -> float | bool:
    """Doubling retry delays. Task SDKs whose ``retry_exponential_backoff`` is a multiplier (Airflow 3.3) count
    ``True`` as 1, a constant delay; older ones take a flag and refuse a float."""
    from airflow.sdk import BaseOperator

    return True if isinstance(BaseOperator.retry_exponential_backoff, bool) else 2.0


def build_dag(acct: AccountConfig, cfg_path: str, *, state_conn_id: str = DEFAULT_CONN_ID) -> Any:
    """The sync DAG of one account: extract → map → load → reconcile → report."""
    import pendulum
    from airflow.sdk import DAG, CronDataIntervalTimetable

    from airflow_provider_fbmkto.operators.steps import (
        FbmktoMapRecordsOperator,
        FbmktoSyncReportOperator,
        FreshBooksExtractRecordsOperator,
        MarketoLoadRecordsOperator,
        MarketoReconcileLeadsOperator,
    )

    default_args: dict[str, Any] = {
        "retries": acct.retries,
        "retry_delay": timedelta(seconds=int(setting("retry_delay_seconds"))),
        "retry_exponential_backoff": _exponential_backoff(),
        "max_retry_delay": timedelta(minutes=30),
    }
    common: dict[str, Any] = {"account": acct.name, "config_path": cfg_path, "state_conn_id": state_conn_id}
    marketo: dict[str, Any] = {"pool": acct.pool} if acct.pool else {}
    doc = DOC.format(
        name=acct.name,
        dag_id=acct.dag_id,
        fb=acct.freshbooks_conn_id,
        mk=acct.marketo_conn_id,
        schedule=acct.schedule,
        tz=acct.timezone,
    )
    with DAG(
        dag_id=acct.dag_id,
        schedule=CronDataIntervalTimetable(acct.schedule, timezone=acct.timezone),
        start_date=pendulum.instance(start_of_day(acct.start_date, acct.tz)),
        catchup=acct.catchup,
        max_active_runs=acct.max_active_runs,
        default_args=default_args,
        params=_params(),
        doc_md=doc,
        tags=["fbmkto", "freshbooks", "marketo"],
    ) as dag:
        extract = FreshBooksExtractRecordsOperator(task_id="extract", **common)
        mapped = FbmktoMapRecordsOperator(task_id="map", **common)
        load = MarketoLoadRecordsOperator(task_id="load", **common, **_load_pool(acct))
        reconcile = MarketoReconcileLeadsOperator(
            task_id="reconcile",
            poll_interval=float(setting("export_poll_seconds")),
            **common,
            **marketo,
        )
        # The account's notifiers go on ``report``: it runs after every run (trigger rule all_done) and fails
        # whenever the run failed or left rows beyond its alerts, so they are called once per failed run.
        report = FbmktoSyncReportOperator(
            task_id="report", on_failure_callback=_notifiers(acct, cfg_path) or None, **common
        )
        extract >> mapped >> load >> reconcile >> report
    return dag


def build_events_dag(acct: AccountConfig, cfg_path: str, *, state_conn_id: str = DEFAULT_CONN_ID) -> Any:
    """The webhook-driven DAG of an account with ``webhooks: true`` (``fbmkto_events__<name>``).

    It runs continuously: a deferrable sensor waits (in the triggerer, holding no worker slot) until the
    receiver has stored FreshBooks events for the account, then extract → map → load → report send what they
    imply -- Invoice Sent at the moment FreshBooks e-mailed the invoice. Its window is "since the last
    successful run"; the ledger keys are the daily DAG's, so the two never write the same activity twice.
    """
    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_fbmkto.operators.steps import (
        FbmktoMapRecordsOperator,
        FbmktoSyncReportOperator,
        FreshBooksExtractRecordsOperator,
        MarketoLoadRecordsOperator,
    )
    from airflow_provider_fbmkto.sensors.freshbooks import FreshBooksWebhookEventSensor

    common: dict[str, Any] = {"account": acct.name, "config_path": cfg_path, "state_conn_id": state_conn_id}
    with DAG(
        dag_id=f"fbmkto_events__{acct.name}",
        schedule="@continuous",
        start_date=pendulum.instance(start_of_day(acct.start_date, acct.tz)),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": acct.retries, "retry_delay": timedelta(minutes=1)},
        params=_params(),
        doc_md=f"FreshBooks webhook events of account `{acct.name}` → Marketo, as they arrive.",
        tags=["fbmkto", "freshbooks", "marketo", "webhooks"],
    ) as dag:
        wait = FreshBooksWebhookEventSensor(
            task_id="wait_for_events",
            account=acct.name,
            state_conn_id=state_conn_id,
            poke_interval=float(setting("event_poll_seconds")),
            timeout=timedelta(days=7).total_seconds(),
        )
        extract = FreshBooksExtractRecordsOperator(task_id="extract", **common)
        mapped = FbmktoMapRecordsOperator(task_id="map", **common)
        load = MarketoLoadRecordsOperator(task_id="load", **common, **_load_pool(acct))
        report = FbmktoSyncReportOperator(task_id="report", **common)
        wait >> extract >> mapped >> load >> report
    return dag


def _load_pool(acct: AccountConfig) -> dict[str, Any]:
    return {"pool": acct.pool, "pool_slots": LOAD_POOL_SLOTS} if acct.pool else {}


def _notifiers(acct: AccountConfig, source: str) -> list[Any]:
    """The account's ``alerts.notify`` as notifier objects (Airflow calls them when a run fails)."""
    out = []
    for i, spec in enumerate(acct.alerts.notify):
        where = f"alerts.notify[{i}]"
        module, _, name = spec.classpath.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise AccountConfigError(
                source,
                acct.name,
                f"{where}.classpath",
                f"cannot import {spec.classpath!r} ({exc}); "
                "install the provider that has it in every Airflow component, or fix the path",
            ) from None
        try:
            out.append(cls(**dict(spec.kwargs)))
        except TypeError as exc:
            raise AccountConfigError(
                source, acct.name, f"{where}.kwargs", f"{spec.classpath} refused them: {exc}"
            ) from None
    return out


def build_dags(
    dag_file: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[AccountConfigError]]:
    """DAGs of every valid account in the config next to ``dag_file`` (or ``$FBMKTO_CONFIG``), plus the errors
    of the invalid ones (so one broken account does not take the others down)."""
    path = config_path(Path(dag_file).parent, os.environ if environ is None else environ)
    if not path.exists():
        return {}, []
    accounts, errors = load_config_collecting(path)
    ok = []
    for acct in accounts:
        try:
            _notifiers(acct, str(path))
        except AccountConfigError as exc:  # a notifier that cannot be built: that account's problem only
            errors.append(exc)
        else:
            ok.append(acct)
    accounts = ok
    dags = {a.dag_id: build_dag(a, str(path)) for a in accounts}
    dags.update({f"fbmkto_events__{a.name}": build_events_dag(a, str(path)) for a in accounts if a.webhooks})
    return dags, errors

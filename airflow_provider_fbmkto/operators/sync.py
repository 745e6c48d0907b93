"""The five steps of a sync run as operators: extract, map, load, reconcile, report."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow_provider_fbmkto.operators.base import FbmktoAccountOperator, airflow_home

log = logging.getLogger(__name__)


class FreshBooksExtractRecordsOperator(FbmktoAccountOperator):
    """Pull FreshBooks records changed since the last pull (and pending webhook events) into staging.

    Resolves the run's window once; XCom carries only the window, the staging folder and counts.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
        from airflow_provider_fbmkto.pipeline.extract import extract

        ctx = self.new_run_context(context)
        self.state.runs.start(ctx.name, ctx.run_id, window_start=ctx.window.start, window_end=ctx.window.end)
        hook = FreshBooksHook(ctx.account.freshbooks_conn_id, state=self.state)
        result = extract(hook, self.state, ctx, self.staging_dir(ctx.run_id))
        result["window"] = {"start": ctx.window.start.isoformat(), "end": ctx.window.end.isoformat()}
        result["now"] = ctx.now.isoformat()
        self.log.info("extracted %s for window %s .. %s", result["counts"], ctx.window.start, ctx.window.end)
        return result


class FbmktoMapRecordsOperator(FbmktoAccountOperator):
    """Merge staged records into the mirror and plan the run's Marketo writes into the ledger."""

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_fbmkto.pipeline.planner import plan_run

        ctx = self.run_context(context)
        data = self.extracted(context)
        result = plan_run(self.state, ctx, self.staging_dir(ctx.run_id), data)
        self.log.info("planned %s; ledger %s", result["planned"], result["ledger"])
        return result


class MarketoLoadRecordsOperator(FbmktoAccountOperator):
    """Send pending ledger rows to Marketo: companies, leads, activities, list membership.

    Batches go out up to the Marketo connection's ``max_concurrency`` at once. In an Airflow pool the task
    sends at most as many at once as the pool slots it occupies (``pool_slots``), so a pool's size stays the
    bound on concurrent Marketo calls across workers.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.pipeline.loader import load

        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        concurrency = hook.creds.max_concurrency
        if ctx.account.pool:
            concurrency = min(concurrency, self.pool_slots)
        result = load(hook, self.state, ctx, concurrency=concurrency)
        self.log.info("loaded %s", result)
        return result


class MarketoReconcileLeadsOperator(FbmktoAccountOperator):
    """Compare Marketo leads changed since the last reconcile with FreshBooks clients (optionally fix them).

    Large accounts use a bulk lead export and defer until Marketo has produced it.

    :param poll_interval: seconds between export status polls (Marketo asks for at most one a minute).
    """

    def __init__(self, *, poll_interval: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any] | None:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.pipeline.reconcile import EXPORT_FIELDS, export_window, needs_bulk, reconcile
        from airflow_provider_fbmkto.triggers.marketo import MarketoBulkExportTrigger

        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        if not needs_bulk(self.state, ctx):
            return self._done(reconcile(hook, self.state, ctx))
        since, until = export_window(self.state, ctx)
        export_id = hook.create_lead_export(list(EXPORT_FIELDS), since, until)
        hook.enqueue_export(export_id)
        self.defer(
            trigger=MarketoBulkExportTrigger(
                export_id=export_id,
                marketo_conn_id=ctx.account.marketo_conn_id,
                poll_interval=self.poll_interval,
                timeout_at=(ctx.now + timedelta(hours=6)),
            ),
            method_name="execute_complete",
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.hooks.marketo_types import BulkExportError
        from airflow_provider_fbmkto.pipeline.reconcile import reconcile

        if event.get("status") != "success":
            raise BulkExportError(f"Marketo bulk export {event.get('export_id')}: {event.get('message')}")
        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        return self._done(reconcile(hook, self.state, ctx, leads=hook.download_export(str(event["export_id"]))))

    def _done(self, result: dict[str, Any]) -> dict[str, Any]:
        self.log.info("reconciled: %s leads compared, mismatches %s", result["leads_compared"], result["mismatches"])
        return result


class FbmktoSyncReportOperator(FbmktoAccountOperator):
    """Summarise the run (logged, saved as JSON, in the run log) and clean staging after success.

    Runs whatever happened upstream (trigger rule ``all_done``) so a failed run is reported too, then fails
    itself when a step did not complete, so the run's state stays honest.
    """

    STEPS = ("extract", "map", "load", "reconcile")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.pipeline.report import build_report, render_table, save_report

        ti = context["ti"]
        steps = {step: ti.xcom_pull(task_ids=step) for step in self.STEPS}
        missing = [s for s, v in steps.items() if v is None and s in self.upstream_task_ids_or_all()]
        if steps["extract"] is None:
            self.state.runs.finish(self.account, context["run_id"], status="failed")
            raise RuntimeError(f"sync of {self.account} did not start: extract failed; see its log")
        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        report = build_report(
            self.state,
            ctx,
            steps={k: v for k, v in steps.items() if v is not None},
            budget_used=hook.budget_used(),
            daily_budget=hook.creds.daily_budget,
        )
        report["incomplete_steps"] = missing
        path = save_report(report, airflow_home())
        self.log.info("%s\nreport saved to %s", render_table(report), path)
        self.state.runs.finish(ctx.name, ctx.run_id, status="failed" if missing else "success", summary=report)
        if missing:
            raise RuntimeError(f"sync of {ctx.name} did not complete: {', '.join(missing)} failed; see their logs")
        staging = self.staging_dir(ctx.run_id)
        if staging.exists():
            staging.fs.rm(staging.path, recursive=True)
        return {"report": str(path), "this_run": report["this_run"], "failures": len(report["failures"])}

    def upstream_task_ids_or_all(self) -> set[str]:
        return set(self.get_flat_relative_ids(upstream=True)) or set(self.STEPS)

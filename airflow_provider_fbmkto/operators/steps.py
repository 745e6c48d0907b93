"""The five steps of a sync run as operators: extract, map, load, reconcile, report."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow_provider_fbmkto.operators.base import (
    FbmktoAccountOperator,
    airflow_home,
    fail_without_retry,
    fails_at_once,
)
from airflow_provider_fbmkto.operators.heap import with_bulk_heap

log = logging.getLogger(__name__)


class FreshBooksExtractRecordsOperator(FbmktoAccountOperator):
    """Pull FreshBooks records changed since the last pull (and pending webhook events) into staging.

    Resolves the run's window once; XCom carries only the window, the staging folder and counts.
    """

    @fails_at_once
    @with_bulk_heap
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
    """Merge staged records into the mirror and plan the run's Marketo writes into the ledger.

    With ``marketo.companies: auto`` it first asks Marketo, once a week at most (one call), whether companies
    are writable: on a CRM-synced instance the company facts are then planned onto lead fields.
    """

    @fails_at_once
    @with_bulk_heap
    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.pipeline.planner import plan_run
        from airflow_provider_fbmkto.pipeline.preflight import ensure_companies_known

        ctx = self.run_context(context)
        data = self.extracted(context)
        if not ctx.dry_run:
            hook = lambda: MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)  # noqa: E731
            ensure_companies_known(self.state, ctx.account, hook, ctx.now)
        result = plan_run(self.state, ctx, self.staging_dir(ctx.run_id), data)
        self.log.info("planned %s; ledger %s", result["planned"], result["ledger"])
        return result


class MarketoLoadRecordsOperator(FbmktoAccountOperator):
    """Send pending ledger rows to Marketo: companies, leads, activities, list membership.

    First a preflight (:mod:`~airflow_provider_fbmkto.pipeline.preflight`, a few read calls) checks that the
    instance has what the account writes; anything missing fails the task at once, without retries and
    before any write, with one message naming each problem and its fix (every step fails so on an error no
    retry can fix: :data:`~airflow_provider_fbmkto.operators.base.UNFIXABLE`).

    Batches go out up to the Marketo connection's ``max_concurrency`` at once. In an Airflow pool the task
    sends at most as many at once as the pool slots it occupies (``pool_slots``), so a pool's size stays the
    bound on concurrent Marketo calls across workers.
    """

    @fails_at_once
    @with_bulk_heap
    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.pipeline import preflight as pf
        from airflow_provider_fbmkto.pipeline.loader import load, share_stop
        from airflow_provider_fbmkto.state.budget import ShareExhausted

        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        hook.charge_to(ctx.name, ctx.account.daily_budget_share)  # counted per account; capped by its share
        try:
            usage = hook.count_other_integrations()  # the daily quota is the instance's, shared with others
            refused = pf.companies_refused(self.state, ctx.name)
            preflight = pf.require_ready(hook, ctx.account, companies_refused=refused)  # PreflightFailed: no retries
        except ShareExhausted as exc:  # the account's share was spent before this load: everything waits
            self.log.warning("%s", exc)
            return {"sent": {}, "notes": [], "stopped": share_stop(self.state, ctx, str(exc)), "budget": {}}
        concurrency = hook.creds.max_concurrency
        if ctx.account.pool:
            concurrency = min(concurrency, self.pool_slots)
        result = load(hook, self.state, ctx, concurrency=concurrency, type_ids=preflight.type_ids)
        result["notes"] = [*preflight.notes, *result.get("notes", [])]
        result["budget"] = {"instance_used_at_start": usage.total, "other_integrations": hook.others_today}
        if hook.crm_synced or result.get("sent", {}).get("company:written"):
            pf.remember_companies(self.state, ctx.name, refused=hook.crm_synced, at=ctx.now)
        self.log.info("loaded %s", result)
        return result


class MarketoReconcileLeadsOperator(FbmktoAccountOperator):
    """Compare Marketo leads changed since the last reconcile with FreshBooks clients (optionally fix them),
    and the names of the account's companies, a batch a run.

    After the first reconcile the changed leads come from Marketo's Lead Changes feed (a call when nothing
    changed); the first reconcile of a large account, or one after more than the feed keeps (90 days), uses a
    bulk lead export and defers until Marketo has produced it.

    :param poll_interval: seconds between export status polls (Marketo asks for at most one a minute).
    """

    def __init__(self, *, poll_interval: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_interval = poll_interval
        self._export_id: str | None = None  # the export this try started, cancelled if the task is killed

    @fails_at_once
    @with_bulk_heap
    def execute(self, context: Any) -> dict[str, Any] | None:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.hooks.marketo_types import ExportQuotaExhausted, InvalidSubscription
        from airflow_provider_fbmkto.pipeline.reconcile import EXPORT_FIELDS, export_window, needs_export, reconcile
        from airflow_provider_fbmkto.triggers.marketo import MarketoBulkExportTrigger

        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        hook.charge_to(ctx.name)  # its reads count as the account's calls (not capped: the load is the spender)
        if not needs_export(self.state, ctx):
            return self._done(hook, ctx, reconcile(hook, self.state, ctx))
        since, until = export_window(self.state, ctx)
        # The day's export allocation spent (1029) or no subscription behind the host (614): retries cannot help.
        with fail_without_retry(ExportQuotaExhausted, InvalidSubscription):
            export_id = self._export_id = hook.create_lead_export(list(EXPORT_FIELDS), since, until)
            hook.enqueue_export(export_id)  # a job already queued (an earlier try's) is reused
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

    @fails_at_once
    @with_bulk_heap
    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.hooks.marketo_types import BulkExportError
        from airflow_provider_fbmkto.pipeline.reconcile import reconcile

        if event.get("status") == "timeout":  # stop it spending the instance's export quota, then fail
            raise BulkExportError(
                f"Marketo bulk export {event.get('export_id')}: {event.get('message')}"
                + self._cancel(str(event.get("export_id")))
            )
        if event.get("status") != "success":
            raise BulkExportError(f"Marketo bulk export {event.get('export_id')}: {event.get('message')}")
        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        hook.charge_to(ctx.name)
        leads = hook.download_export(str(event["export_id"]))
        return self._done(hook, ctx, reconcile(hook, self.state, ctx, leads=leads))

    def on_kill(self) -> None:
        """Killed while creating or enqueueing its export: cancel it (a deferred task's trigger ends on its own)."""
        if self._export_id:
            self._cancel(self._export_id)

    def _cancel(self, export_id: str) -> str:
        """Cancel a bulk export; the sentence the failure message gains (the export may have ended meanwhile)."""
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook

        try:
            MarketoHook(self.account_config.marketo_conn_id, state_conn_id=self.state_conn_id).cancel_export(export_id)
        except Exception as exc:  # a failed cancel must not hide why the task stops
            self.log.warning("could not cancel Marketo bulk export %s: %s", export_id, exc)
            return f"; cancelling it failed ({type(exc).__name__}), it ends by itself within Marketo's limits"
        self.log.info("cancelled Marketo bulk export %s", export_id)
        return "; the export was cancelled (it no longer spends the instance's export quota)"

    def _done(self, hook: Any, ctx: Any, result: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_fbmkto.pipeline.reconcile import reconcile_companies

        result["companies"] = reconcile_companies(hook, self.state, ctx)
        self.log.info(
            "reconciled (%s): %s leads compared, mismatches %s; %s companies compared, mismatches %s",
            result["source"], result["leads_compared"], result["mismatches"],
            result["companies"]["compared"], result["companies"]["mismatches"],
        )  # fmt: skip
        return result


class FbmktoSyncReportOperator(FbmktoAccountOperator):
    """Summarise the run (logged, saved as JSON, in the run log) and clean staging after success.

    Runs whatever happened upstream (trigger rule ``all_done``) so a failed run is reported too, then fails
    itself when a step did not complete, so the run's state stays honest -- and when the run left more skipped
    or failed rows than the account's ``alerts`` allow, so Airflow's notifications fire.
    """

    STEPS = ("extract", "map", "load", "reconcile")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    @fails_at_once
    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_provider_fbmkto.hooks.marketo import MarketoHook
        from airflow_provider_fbmkto.pipeline.report import (
            budget_summary,
            build_report,
            policy_breaches,
            render_table,
            save_report,
        )

        ti = context["ti"]
        steps = {step: ti.xcom_pull(task_ids=step) for step in self.STEPS}
        missing = [s for s, v in steps.items() if v is None and s in self.upstream_task_ids_or_all()]
        if steps["extract"] is None:
            self.state.runs.finish(self.account, context["run_id"], status="failed")
            raise RuntimeError(f"sync of {self.account} did not start: extract failed; see its log")
        ctx = self.run_context(context)
        hook = MarketoHook(ctx.account.marketo_conn_id, state_conn_id=self.state_conn_id)
        others = ((steps["load"] or {}).get("budget") or {}).get("other_integrations")
        report = build_report(
            self.state,
            ctx,
            steps={k: v for k, v in steps.items() if v is not None},
            budget=budget_summary(hook, ctx, other_integrations=others),
        )
        report["incomplete_steps"] = missing
        path = save_report(report, airflow_home())
        self.log.info("%s\nreport saved to %s", render_table(report), path)
        outcome = "failed" if missing else "dry_run" if ctx.dry_run else "success"  # a dry run is no last success
        self.state.runs.finish(ctx.name, ctx.run_id, status=outcome, summary=report)
        if missing:
            raise RuntimeError(f"sync of {ctx.name} did not complete: {', '.join(missing)} failed; see their logs")
        staging = self.staging_dir(ctx.run_id)
        if staging.exists():
            staging.fs.rm(staging.path, recursive=True)
        breaches = policy_breaches(self.state, ctx, report)
        if breaches:  # the run completed but left rows behind: Airflow's failure handling tells someone
            raise AirflowFailException(
                f"sync of {ctx.name} left {'; '.join(breaches)}; see the report ({path}) or `fbmkto ledger "
                f"show-failed --account {ctx.name}`, fix the cause, then `fbmkto ledger replay --account {ctx.name}`"
            )
        return {"report": str(path), "this_run": report["this_run"], "failures": len(report["failures"])}

    def upstream_task_ids_or_all(self) -> set[str]:
        return set(self.get_flat_relative_ids(upstream=True)) or set(self.STEPS)

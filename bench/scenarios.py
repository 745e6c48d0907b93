"""The scenarios: a first full load, a steady-state day after it, and a backfill of daily runs.

* ``full_load`` -- a new sync history; one run whose window covers the whole seeded history, so every
  FreshBooks record is extracted and every activity, company, lead and list membership is written: the
  large load the rate-limit floor is about.
* ``steady_state`` -- after the full load, about 1 % of clients, invoices and payments change (renamed
  contacts, new and edited invoices, new payments) and the next day's run syncs them: it should send only
  what changed.
* ``backfill`` -- a new sync history; the daily runs of the last ``backfill_days`` days, oldest first, as
  ``airflow backfill create`` runs them: the first writes every company and lead, the others are small syncs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow_provider_fbmkto.sync.window import start_of_day
from bench.measure import READ_KINDS, WRITE_KINDS, CallTally, floor_seconds, ratio
from bench.runner import TASKS, RunResult, run_dag
from bench.world import RATE_LIMIT, TZ, WINDOW_SECONDS, World


@dataclass
class Scenario:
    name: str
    description: str
    runs: list[RunResult] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def full_load(world: World) -> Scenario:
    world.fresh_state()
    start, end = start_of_day(world.history_start, TZ), start_of_day(world.today, TZ)
    scenario = Scenario("full_load", f"one run over the whole history {world.history_start} .. {world.today}")
    scenario.runs.append(run_dag(world, "bench__full_load", start, end))
    return scenario


def steady_state(world: World) -> Scenario:
    """Run after :func:`full_load` on the same state."""
    changed = world.change_fraction(world.settings.steady_fraction, world.today)
    day = world.today
    start, end = start_of_day(day, TZ), start_of_day(day + timedelta(days=1), TZ)
    scenario = Scenario(
        "steady_state",
        f"the daily run of {day} after {world.settings.steady_fraction:.0%} of clients, invoices and payments changed",
    )
    scenario.notes["changed"] = changed
    scenario.runs.append(run_dag(world, "bench__steady", start, end))
    return scenario


def backfill(world: World) -> Scenario:
    world.fresh_state()
    days = world.settings.backfill_days
    first = world.today - timedelta(days=days)
    scenario = Scenario("backfill", f"{days} daily runs {first} .. {world.today - timedelta(days=1)}, oldest first")
    for n in range(days):
        day = first + timedelta(days=n)
        start, end = start_of_day(day, TZ), start_of_day(day + timedelta(days=1), TZ)
        scenario.runs.append(run_dag(world, f"backfill__{day.isoformat()}", start, end))
    return scenario


# -- summaries ---------------------------------------------------------------------------------------------


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _round(value: float, digits: int = 2) -> float:
    return round(value, digits)


def run_summary(run: RunResult, time_scale: float) -> dict[str, Any]:
    """The figures of one run (used for the backfill's per-run table)."""
    writes, write_min = run.marketo.total(WRITE_KINDS)
    load = run.phases["load"]
    return {
        "run_id": run.run_id,
        "window": [run.window[0].isoformat(), run.window[1].isoformat()],
        "freshbooks_records": sum(run.extracted.get(k, 0) for k in ("client", "invoice", "payment")),
        "marketo_records": {k: run.marketo.records[k] for k in WRITE_KINDS if run.marketo.records[k]},
        "marketo_calls": sum(run.marketo.calls.values()),
        "marketo_write_calls": writes,
        "marketo_write_minimum": write_min,
        "load_seconds": _round(load.seconds, 3),
        "load_emulated_seconds": _round(load.seconds / time_scale),
        "load_calls": sum(load.marketo.calls.values()),
        "load_marketo_span_emulated_seconds": _round(load.marketo_span / time_scale),
        "load_marketo_busy_emulated_seconds": _round(load.marketo_busy / time_scale),
        "total_seconds": _round(run.seconds),
        "peak_rss_mb": _mb(max(p.rss_peak_kb for p in run.phases.values())),
    }


def summarize(scenario: Scenario, world: World) -> dict[str, Any]:
    """The scenario's JSON section: records, calls vs minimum, time vs floor, memory, throughput."""
    ts = world.settings.time_scale
    marketo, freshbooks = CallTally(), CallTally()
    phase_seconds: dict[str, float] = defaultdict(float)
    phase_task_seconds: dict[str, float] = defaultdict(float)
    phase_cpu: dict[str, float] = defaultdict(float)
    deferred = 0.0
    phase_peak: dict[str, int] = defaultdict(int)
    phase_calls: dict[str, Counter[str]] = defaultdict(Counter)
    for run in scenario.runs:
        marketo += run.marketo
        freshbooks += run.freshbooks
        for task, phase in run.phases.items():
            phase_seconds[task] += phase.seconds
            phase_task_seconds[task] += phase.task_seconds
            phase_cpu[task] += phase.cpu_seconds
            deferred += phase.deferred_seconds
            phase_peak[task] = max(phase_peak[task], phase.rss_peak_kb)
            phase_calls[task].update(phase.marketo.calls)
    total = sum(run.seconds for run in scenario.runs)
    writes, write_min = marketo.total(WRITE_KINDS)
    reads, read_min = marketo.total(READ_KINDS)
    fb_calls, fb_min = freshbooks.total(("client", "invoice", "payment"))
    floor = floor_seconds(write_min + read_min, RATE_LIMIT, WINDOW_SECONDS)
    fb_records = sum(freshbooks.records.values())
    mk_records = sum(marketo.records[k] for k in WRITE_KINDS)
    load_emulated = phase_seconds["load"] / ts
    section: dict[str, Any] = {
        "description": scenario.description,
        "runs": len(scenario.runs),
        "freshbooks": {
            **freshbooks.as_dict(),
            "record_calls": fb_calls,
            "record_minimum": fb_min,
            "ratio": ratio(fb_calls, fb_min),
            "token_calls": freshbooks.calls["token"],
        },
        "marketo": {
            **marketo.as_dict(),
            "write_calls": writes,
            "write_minimum": write_min,
            "write_ratio": ratio(writes, write_min),
            "read_calls": reads,
            "read_minimum": read_min,
            "token_calls": marketo.calls["token"],
            "other_calls": sum(marketo.calls.values()) - writes - reads - marketo.calls["token"],
            "all_calls": sum(marketo.calls.values()),
            "max_in_flight": max(run.max_in_flight for run in scenario.runs),
        },
        "time": {
            "phases": {
                task: {
                    "seconds": _round(phase_seconds[task], 3),
                    "emulated_seconds": _round(phase_seconds[task] / ts),
                    "in_task_seconds": _round(phase_task_seconds[task], 3),
                    "cpu_seconds": _round(phase_cpu[task], 3),
                    "marketo_calls": sum(phase_calls[task].values()),
                }
                for task in TASKS
            },
            "deferred_seconds": _round(deferred, 3),
            "total_seconds": _round(total),
            "total_emulated_seconds": _round(total / ts),
            "active_seconds": _round(total - deferred),
            "floor_emulated_seconds": _round(floor),
            "floor_seconds": _round(floor * ts),
            "load_vs_floor": ratio(load_emulated, floor),
            # the load's Marketo calls alone, first arrival to last answer (the rest is the task's own start-up)
            "load_marketo_span_emulated_seconds": _round(
                sum(r.phases["load"].marketo_span for r in scenario.runs) / ts
            ),
            "total_vs_floor": ratio(total / ts, floor),
            "active_vs_floor": ratio((total - deferred) / ts, floor),
        },
        "memory": {
            "peak_rss_mb": _mb(max(phase_peak.values())),
            "peak_rss_mb_per_phase": {task: _mb(phase_peak[task]) for task in TASKS},
            "worker_idle_rss_mb": _mb(world.worker.idle_rss_kb) if world.worker else None,
        },
        "throughput": {
            "freshbooks_records_per_s": _round(fb_records / total, 1) if total else None,
            "marketo_records_per_s": _round(mk_records / total, 1) if total else None,
            "marketo_records_per_emulated_s": _round(mk_records / (total / ts), 1) if total else None,
        },
        "reconcile": {
            "calls": sum(phase_calls["reconcile"].values()) - phase_calls["reconcile"]["token"],
            "token_calls": phase_calls["reconcile"]["token"],
            "bulk_export_calls": phase_calls["reconcile"]["bulk_export"],
            "calls_by_kind": dict(sorted(phase_calls["reconcile"].items())),
            "seconds": _round(phase_seconds["reconcile"], 3),
            "emulated_seconds": _round(phase_seconds["reconcile"] / ts),
        },
        **scenario.notes,
    }
    if len(scenario.runs) == 1:
        run = scenario.runs[0]
        section["window"] = [run.window[0].isoformat(), run.window[1].isoformat()]
        section["planned"] = run.xcom["map"].get("planned")
        section["affected_clients"] = run.xcom["map"].get("affected_clients")
        section["loaded"] = run.xcom["load"].get("sent")
    else:
        section["per_run"] = [run_summary(run, ts) for run in scenario.runs]
    return section

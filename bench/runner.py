"""One DAG run, task by task, through the worker: the same operators and order as the DAG factory builds.

extract → map → load → reconcile (deferring to the bulk export trigger on large accounts) → report. Each
task gets the context Airflow gives it and the XCom of the tasks before it; the harness measures each
phase's wall time, the calls the emulators saw during it, and the task process's peak RSS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.measure import CallTally, tally_freshbooks, tally_marketo
from bench.world import ACCOUNT, World

TASKS = ("extract", "map", "load", "reconcile", "report")


@dataclass
class Phase:
    """One task of one run."""

    seconds: float
    task_seconds: float
    rss_peak_kb: int
    #: the task process's RSS when it started (a forked child: the pages it shares with the worker so far)
    rss_start_kb: int = 0
    deferred_seconds: float = 0.0
    #: CPU seconds (user + system, every thread) of the task process(es), the trigger's not included
    cpu_seconds: float = 0.0
    marketo: CallTally = field(default_factory=CallTally)
    fb_calls: int = 0
    #: From the first Marketo call's arrival to the last one's answer (0 without calls), real seconds.
    marketo_span: float = 0.0
    #: The Marketo calls' own durations added up (what they would take one after the other), real seconds.
    marketo_busy: float = 0.0


@dataclass
class RunResult:
    """One DAG run: its phases, its calls and the tasks' XCom."""

    run_id: str
    window: tuple[datetime, datetime]
    phases: dict[str, Phase]
    xcom: dict[str, Any]
    marketo: CallTally
    freshbooks: CallTally
    seconds: float
    max_in_flight: int

    @property
    def extracted(self) -> dict[str, int]:
        counts: dict[str, int] = self.xcom["extract"]["counts"]
        return counts


def run_dag(
    world: World, run_id: str, start: datetime, end: datetime, params: dict[str, Any] | None = None
) -> RunResult:
    """Run the account's DAG once for the data interval ``[start, end)``."""
    worker = world.worker
    assert worker is not None, "call world.fresh_state() first"
    fb_calls, mk_calls = world.fb.calls, world.mk.calls
    fb_first, mk_first = len(fb_calls), len(mk_calls)
    world.mk.app.max_in_flight = 0
    base: dict[str, Any] = {
        "account": ACCOUNT,
        "config": str(world.config_path),
        "run_id": run_id,
        "interval": [start.isoformat(), end.isoformat()],
        "params": params or {},
        "poll_interval": 60.0 * world.settings.time_scale,
    }
    xcom: dict[str, Any] = {}
    phases: dict[str, Phase] = {}
    run_started = time.perf_counter()
    for task in TASKS:
        fb0, mk0 = len(fb_calls), len(mk_calls)
        started = time.perf_counter()
        answer = worker.send({**base, "op": "task", "task": task, "xcom": xcom})
        task_seconds, peak, deferred = float(answer["seconds"]), int(answer["rss_peak_kb"]), 0.0
        cpu = float(answer.get("cpu_seconds", 0.0))
        while "deferred" in answer:
            waited = time.perf_counter()
            event = worker.send({"op": "trigger", "trigger": answer["deferred"]["trigger"]})["result"]
            deferred += time.perf_counter() - waited
            answer = worker.send(
                {
                    **base,
                    "op": "resume",
                    "task": task,
                    "xcom": xcom,
                    "method": answer["deferred"]["method"],
                    "event": event,
                }
            )
            task_seconds += float(answer["seconds"])
            cpu += float(answer.get("cpu_seconds", 0.0))
            peak = max(peak, int(answer["rss_peak_kb"]))
        xcom[task] = answer["result"]
        phases[task] = Phase(
            seconds=time.perf_counter() - started,
            task_seconds=task_seconds,
            rss_peak_kb=peak,
            rss_start_kb=int(answer.get("rss_start_kb", 0)),
            deferred_seconds=deferred,
            cpu_seconds=cpu,
            marketo=tally_marketo(mk_calls[mk0:]),
            fb_calls=len(fb_calls) - fb0,
            marketo_span=_span(mk_calls[mk0:]),
            marketo_busy=sum(c.duration for c in mk_calls[mk0:]),
        )
    seconds = time.perf_counter() - run_started
    world.settle_activities()
    return RunResult(
        run_id=run_id,
        window=(start, end),
        phases=phases,
        xcom=xcom,
        marketo=tally_marketo(mk_calls[mk_first:]),
        freshbooks=tally_freshbooks(fb_calls[fb_first:], xcom["extract"]["counts"]),
        seconds=seconds,
        max_in_flight=world.mk.max_in_flight,
    )


def _span(calls: list[Any]) -> float:
    if not calls:
        return 0.0
    first: datetime = min(c.at for c in calls)
    last: datetime = max(c.at + timedelta(seconds=c.duration) for c in calls)
    return (last - first).total_seconds()

"""The task process server: ``python -m bench.worker`` runs each task in a process of its own, as Airflow does.

The server imports the provider once, then reads one JSON command per line on stdin and answers one JSON
line on its original stdout (everything else the tasks print goes to stderr). Each command runs in a child
forked for it -- as Airflow's executors fork a process per task instance -- so a task starts with no cached
token, limiter or state DB engine of an earlier task, and its peak RSS (``VmHWM``) is its own.

Commands (``op``):

* ``task``: build the operator named by ``task`` (``extract``, ``map``, ``load``, ``reconcile``, ``report``)
  and call ``execute(context)`` with the context Airflow gives a task: ``run_id``, ``data_interval_start``/
  ``end``, ``logical_date``, ``params`` and a ``ti`` whose ``xcom_pull(task_ids=…)`` returns the results the
  caller passes in ``xcom``. A deferral answers ``{"deferred": {"trigger": [classpath, kwargs], "method": …}}``.
* ``trigger``: run a serialized trigger until its first event (what the triggerer does).
* ``resume``: call the deferred task's ``method(context, event=…)`` (what the task does after the trigger).
* ``cli``: run ``fbmkto <args>`` (set-up: ``setup-marketo``, ``authorize``).

Every answer carries ``seconds`` (time inside the child, around the call) and ``rss_peak_kb``.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

#: operator class and extra constructor arguments per task id (the DAG factory's task ids)
OPERATORS = {
    "extract": "FreshBooksExtractRecordsOperator",
    "map": "FbmktoMapRecordsOperator",
    "load": "MarketoLoadRecordsOperator",
    "reconcile": "MarketoReconcileLeadsOperator",
    "report": "FbmktoSyncReportOperator",
}


def rss_kb() -> tuple[int, int]:
    """``(current, peak)`` resident set size of this process in kB (``/proc``; ``getrusage`` elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak, peak


class _TaskInstance:
    """The part of Airflow's ``ti`` the operators use: ``xcom_pull(task_ids=…)``."""

    def __init__(self, xcom: dict[str, Any]) -> None:
        self._xcom = xcom

    def xcom_pull(self, task_ids: str | None = None, **_: Any) -> Any:
        return self._xcom.get(task_ids or "")


def _context(cmd: dict[str, Any]) -> dict[str, Any]:
    start, end = (datetime.fromisoformat(v) for v in cmd["interval"])
    return {
        "run_id": cmd["run_id"],
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": start,
        "params": dict(cmd.get("params") or {}),
        "ti": _TaskInstance(dict(cmd.get("xcom") or {})),
    }


def _operator(cmd: dict[str, Any]) -> Any:
    from airflow_provider_fbmkto.operators import steps

    cls = getattr(steps, OPERATORS[cmd["task"]])
    kwargs: dict[str, Any] = {"task_id": cmd["task"], "account": cmd["account"], "config_path": cmd["config"]}
    if cmd["task"] == "reconcile" and cmd.get("poll_interval") is not None:
        kwargs["poll_interval"] = float(cmd["poll_interval"])
    return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_task(cmd: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk.exceptions import TaskDeferred

    op = _operator(cmd)
    try:
        return {"result": _jsonable(op.execute(_context(cmd)))}
    except TaskDeferred as deferred:
        return {"deferred": {"trigger": list(deferred.trigger.serialize()), "method": deferred.method_name}}


def run_trigger(cmd: dict[str, Any]) -> dict[str, Any]:
    classpath, kwargs = cmd["trigger"]
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    return {"result": asyncio.run(first_event())}


def run_resume(cmd: dict[str, Any]) -> dict[str, Any]:
    op = _operator(cmd)
    return {"result": _jsonable(getattr(op, cmd["method"])(_context(cmd), event=cmd["event"]))}


def run_cli(cmd: dict[str, Any]) -> dict[str, Any]:
    from contextlib import redirect_stdout

    from airflow_provider_fbmkto.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(cmd["args"]))
    return {"result": {"exit_code": code, "output": out.getvalue()}}


HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "task": run_task,
    "trigger": run_trigger,
    "resume": run_resume,
    "cli": run_cli,
}


def _trace_rss(every: float, label: str) -> None:
    """Log this process's RSS (and, with ``BENCH_TRACEMALLOC=1``, Python's own allocations) every ``every``
    seconds to stderr, i.e. the worker log: set ``BENCH_TRACE_RSS=1`` to find where a task's memory goes."""
    import threading
    import tracemalloc

    if os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start(1)
    started = time.perf_counter()

    def sample() -> None:
        while True:
            now, peak = rss_kb()
            python = f" python {tracemalloc.get_traced_memory()[0] // 2**20} MB" if tracemalloc.is_tracing() else ""
            elapsed = time.perf_counter() - started
            print(f"rss {label} {elapsed:8.1f}s {now // 1024} MB (peak {peak // 1024}){python}", file=sys.stderr)
            time.sleep(every)

    threading.Thread(target=sample, daemon=True).start()


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _profiler(cmd: dict[str, Any]) -> Any:
    """A ``cProfile.Profile`` when ``BENCH_PROFILE`` names this task (``BENCH_PROFILE=map,load``) and
    ``BENCH_PROFILE_DIR`` says where its ``<run_id>.<task>.prof`` goes; else None."""
    wanted = {t.strip() for t in os.environ.get("BENCH_PROFILE", "").split(",") if t.strip()}
    if cmd.get("op") != "task" or cmd.get("task") not in wanted or not os.environ.get("BENCH_PROFILE_DIR"):
        return None
    import cProfile

    if os.environ.get("BENCH_PROFILE_THREADS"):
        _profile_threads(os.environ["BENCH_PROFILE_DIR"], f"{cmd.get('run_id')}.{cmd['task']}")
    return cProfile.Profile()


def _profile_threads(folder: str, prefix: str) -> None:
    """Profile every thread this task starts too (``BENCH_PROFILE_THREADS=1``): one ``.prof`` per thread."""
    import cProfile
    import threading

    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        try:
            profile.runcall(original, self)
        finally:
            profile.dump_stats(os.path.join(folder, f"{prefix}.thread-{self.name}.prof"))

    threading.Thread.run = run  # type: ignore[method-assign]


def in_child(handler: Callable[[dict[str, Any]], dict[str, Any]], cmd: dict[str, Any]) -> dict[str, Any]:
    """Run ``handler(cmd)`` in a forked child; return its answer with the child's time and peak RSS."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the task process
        os.close(read_end)
        code = 0
        if os.environ.get("BENCH_TRACE_RSS"):
            _trace_rss(float(os.environ["BENCH_TRACE_RSS"]), str(cmd.get("task") or cmd.get("op")))
        rss_start, _ = rss_kb()
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        profile = _profiler(cmd)
        try:
            answer = handler(cmd) if profile is None else profile.runcall(handler, cmd)
        except BaseException as exc:  # everything is reported to the harness
            answer = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            code = 1
        answer["seconds"] = time.perf_counter() - started
        answer["cpu_seconds"] = _cpu_seconds() - cpu_started
        if profile is not None:
            profile.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"{cmd.get('run_id')}.{cmd['task']}.prof"))
        _, peak = rss_kb()
        answer["rss_start_kb"], answer["rss_peak_kb"] = rss_start, peak
        data = json.dumps(answer, default=str).encode()
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        return {"error": "the task process died without an answer (killed? out of memory?)"}
    parsed: dict[str, Any] = json.loads(data)
    return parsed


def serve() -> int:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # tasks' prints must not corrupt the protocol
    # What every task process imports anyway, imported once here (forked children share it).
    import airflow_provider_fbmkto.cli
    import airflow_provider_fbmkto.hooks.freshbooks
    import airflow_provider_fbmkto.hooks.marketo
    import airflow_provider_fbmkto.operators.steps
    import airflow_provider_fbmkto.pipeline.extract
    import airflow_provider_fbmkto.pipeline.loader
    import airflow_provider_fbmkto.pipeline.planner
    import airflow_provider_fbmkto.pipeline.reconcile
    import airflow_provider_fbmkto.pipeline.report
    import airflow_provider_fbmkto.triggers.marketo  # noqa: F401

    protocol.write(json.dumps({"ready": True, "rss_kb": rss_kb()[0]}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        handler = HANDLERS.get(str(cmd.get("op")))
        answer = in_child(handler, cmd) if handler else {"error": f"unknown op {cmd.get('op')!r}"}
        protocol.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(serve())

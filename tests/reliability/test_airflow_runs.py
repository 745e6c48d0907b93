"""Airflow's own recovery paths through real DAG runs: task retry, whole-run rerun, task process SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import BASE_CONFIG, World, day
from tests.reliability.conftest import (
    ACTIVITY_WRITES,
    Figures,
    Tally,
    open_world,
    output,
    paid,
    sent,
    set_conn,
    wait_until,
)

pytestmark = pytest.mark.e2e

RETRYING = BASE_CONFIG.replace("retries: 0 ", "retries: 1 ")
assert RETRYING != BASE_CONFIG
TYPES_READ = "/rest/v1/activities/external/types.json"


def _writes(w: World) -> int:
    return sum(1 for c in w.mkto.calls if c.path == ACTIVITY_WRITES)


def test_task_retry_resolves_a_lost_answer_without_resending(airflow_home, tmp_path, figures: Figures):
    """The activity write's answer is lost (read timeout) but Marketo applied it. Airflow retries the load task
    (same run): the retry reads the activities back instead of resending them.

    Whole-run reruns are in the 607, revoked-token and bad-input rows (after a failed run) and in
    ``tests/e2e/test_e2e_sync.py::test_reruns_out_of_order_windows_and_overlapping_manual_run_write_nothing_twice``.
    """
    with open_world(airflow_home, tmp_path, RETRYING, marketo={"timeout_fault_seconds": 5.0}) as w:
        # The hard case: Marketo applies the write 3 s after the client gave up (2 s read timeout) and the retry
        # comes 1 s after the failure, before the write has landed. The retry must wait for the late write
        # (up to 2 x request_timeout after the give-up) and read it back, not resend it.
        w.env["FBMKTO_RETRY_DELAY_SECONDS"] = "1"
        set_conn(w, "marketo_default", request_timeout=2)
        c = w.fb.add_client(fname="Eve", lname="Ng", email="eve@umbrella.io")
        invoices = [
            w.fb.add_invoice(customerid=c["id"], create_date=day(5).isoformat(), amount=f"{n}0.00") for n in (1, 2, 3)
        ]
        expect = Tally({sent("eve@umbrella.io", i) for i in invoices}, {"eve@umbrella.io"}, {"fbmkto:umbrella.io"})
        w.mkto.inject_fault("timeout", count=1, path_prefix=ACTIVITY_WRITES)

        out = w.ok(day(4))  # one DAG run; the load task fails once and Airflow retries it
        assert "new_state=up_for_retry" in out
        assert re.search(r"task_id='load'.*try_number=2", out)
        assert "'confirmed_written': 3" in out
        assert "for a late write before reading them back again" in out
        assert _writes(w) == 1  # the retry sent nothing again
        assert w.mkto.faults.pending() == []

        counts = expect.check(w)
        figures.row(
            "airflow_retry_rerun",
            order=80,
            row="Airflow task retry (load retried after a lost answer)",
            faults={"activity write read timeouts": 1, "task retries": 1},
            runs=1,
            counts=counts,
            outcome="the retry (same run, try 2, 1 s after the failure) waits for Marketo's late write, then confirms "
            "the 3 in-doubt activities by read-back; nothing resent "
            "(whole-run reruns after a failed run: the 607, revoked-token and wrong-Marketo-secret rows)",
        )


def _dags_test_until(w: World, day_: object, ready: Callable[[], bool], log: Path) -> str:
    """Start ``airflow dags test``, SIGKILL its process group once ``ready()``; the run id it was executing."""
    args = [sys.executable, "-m", "airflow", "dags", "test", "fbmkto_sync__acme", str(day_)]
    return _kill_when(w, args, ready, log)


def _kill_when(w: World, args: list[str], ready: Callable[[], bool], log: Path) -> str:
    with log.open("w") as sink:
        proc = subprocess.Popen(args, env=w.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: ready() or proc.poll() is not None, timeout=180, what="the stalled call")
            assert proc.poll() is None, log.read_text()[-4000:]
            os.killpg(proc.pid, signal.SIGKILL)  # the task process dies mid-load: no cleanup, no answer
        finally:
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    found = re.findall(r"(manual__\d{4}-[0-9T:.+-]+)", log.read_text())
    assert found, log.read_text()[-4000:]
    return found[-1]


def _tasks_test(w: World, run_id: str, task: str = "load") -> subprocess.CompletedProcess[str]:
    """``airflow tasks test``: run one task again inside an existing DAG run (as Airflow's retry of it does)."""
    args = [sys.executable, "-m", "airflow", "tasks", "test", "fbmkto_sync__acme", task, run_id]
    return subprocess.run(args, env=w.env, capture_output=True, text=True, timeout=300, check=False)


def test_sigkill_during_load_leaves_an_in_doubt_batch_that_the_retry_settles_exactly(
    airflow_home, tmp_path, figures: Figures
):
    """The task process is SIGKILLed twice during the load, then the load is retried in the same run:

    1. while it holds the claimed activity batch but has not sent it (a slow read before the send);
    2. (the retry) while Marketo holds the activity write, which Marketo then applies after the process died.

    The next retry finds the batch in Marketo by reading back and marks it written; nothing is sent twice.
    """
    with open_world(airflow_home, tmp_path, marketo={"slow_fault_seconds": 2.0, "timeout_fault_seconds": 2.0}) as w:
        c = w.fb.add_client(fname="Kim", lname="Ode", email="kim@cyberdyne.io")
        invoices = [
            w.fb.add_invoice(customerid=c["id"], create_date=day(5).isoformat(), amount=f"{n}.00") for n in range(1, 6)
        ]
        pay = w.fb.add_payment(invoiceid=invoices[0]["id"], amount="1.00", date=day(5).isoformat())
        expect = Tally(
            {sent("kim@cyberdyne.io", i) for i in invoices} | {paid("kim@cyberdyne.io", pay)},
            {"kim@cyberdyne.io"},
            {"fbmkto:cyberdyne.io"},
        )

        # 1. killed before sending: the activity types read (first thing an activity batch does) stalls.
        w.mkto.inject_fault("slow", count=1, path_prefix=TYPES_READ)
        run_id = _dags_test_until(w, day(4), lambda: w.mkto.faults.pending() == [], tmp_path / "kill1.log")
        assert _writes(w) == 0
        assert w.mkto.activities() == []

        # 2. the retry is killed while Marketo holds its write; Marketo applies the write after the kill.
        w.mkto.inject_fault("timeout", count=1, path_prefix=ACTIVITY_WRITES)
        _kill_when(
            w,
            [sys.executable, "-m", "airflow", "tasks", "test", "fbmkto_sync__acme", "load", run_id],
            lambda: w.mkto.faults.pending() == [],
            tmp_path / "kill2.log",
        )
        wait_until(lambda: _writes(w) == 1, timeout=30, what="the stalled write to be applied")
        assert len(w.mkto.activities()) == len(expect.activities)  # landed, with no one left to record it

        # 3. the next retry of the load settles the in-doubt batch by reading it back.
        proc = _tasks_test(w, run_id)
        out = output(proc)
        assert proc.returncode == 0, out[-6000:]
        assert f"'confirmed_written': {len(expect.activities)}" in out
        assert _writes(w) == 1  # not sent again
        counts = expect.check(w)
        figures.row(
            "sigkill_load",
            order=90,
            row="Task process SIGKILL during load (in-doubt batch)",
            faults={"SIGKILL before send": 1, "SIGKILL during send": 1, "stalled calls": 2},
            runs=3,
            counts=counts,
            outcome="unsent claim goes back to pending; the write Marketo applied after the kill is read back, "
            "not resent",
        )

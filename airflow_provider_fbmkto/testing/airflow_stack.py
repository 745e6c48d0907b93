"""An embedded Airflow 3 for the demo and end-to-end tests: real scheduler, dag-processor and api-server.

It runs the same components a deployment runs (LocalExecutor, SQLite metadata DB under ``home``), so a
DAG run here goes through the scheduler, the executor, the task SDK and the execution API exactly as in
production -- backfills included. Everything binds to 127.0.0.1; ``stop()`` ends every process it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: Errors of an ``airflow`` command that pass by themselves.
_TRANSIENT = ("database is locked", "AlreadyRunningBackfill")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class AirflowStack:
    """Airflow's services as child processes of this one.

    :param home: AIRFLOW_HOME (metadata DB, logs, config).
    :param dags_folder: the folder the dag-processor parses.
    :param env: extra environment (connections as ``AIRFLOW_CONN_*``, ``FBMKTO_CONFIG``, …).
    """

    def __init__(self, home: Path, dags_folder: Path, env: Mapping[str, str] | None = None) -> None:
        self.home = Path(home)
        self.dags_folder = Path(dags_folder)
        self.port = free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = self.home / "stack-logs"

    # -- running airflow commands ---------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command with this stack's environment.

        SQLite serialises writers: a command that meets the scheduler's write lock ("database is locked") is
        tried again a few times, as a user would; so is a backfill while the previous one is being closed.
        """
        for attempt in range(8):
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode == 0 or not any(m in proc.stderr for m in _TRANSIENT):
                break
            time.sleep(2 + 2 * attempt)
        if check and proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def airflow_json(self, *args: str, timeout: float = 300) -> Any:
        out = self.airflow(*args, "-o", "json", timeout=timeout).stdout
        # Airflow may print warnings before the JSON; the JSON document is the last line that parses.
        for line in reversed(out.splitlines()):
            if line.startswith(("[", "{")):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return []

    def migrate(self) -> None:
        self.airflow("db", "migrate")

    # -- services ---------------------------------------------------------------------------------------
    def start(self, components: Sequence[str] = ("api-server", "scheduler", "dag-processor")) -> AirflowStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in components:
            args = [name, "--port", str(self.port)] if name == "api-server" else [name]
            log = (self.logs / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    # -- waiting ----------------------------------------------------------------------------------------
    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            listed = {d["dag_id"] for d in self.airflow_json("dags", "list")}
            if set(dag_ids) <= listed:
                return
            if time.monotonic() > deadline:
                errors = self.airflow("dags", "list-import-errors", check=False).stdout
                raise TimeoutError(f"DAGs {sorted(set(dag_ids) - listed)} not parsed in {timeout}s; {errors[-2000:]}")
            time.sleep(2)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.airflow_json("dags", "list-runs", dag_id)
        return rows

    def wait_for_runs(self, dag_id: str, expected: int, timeout: float = 300) -> list[dict[str, Any]]:
        """Wait until ``expected`` runs of ``dag_id`` exist and all are finished; return them."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            runs = self.runs(dag_id)
            if len(runs) >= expected and all(r["state"] in TERMINAL_RUN_STATES for r in runs):
                return runs
            if time.monotonic() > deadline:
                states = [(r["run_id"], r["state"]) for r in runs]
                raise TimeoutError(f"{dag_id}: runs not finished in {timeout}s: {states}")
            time.sleep(2)

    def backfill(self, dag_id: str, from_date: str, to_date: str, *extra: str) -> None:
        self.airflow("backfill", "create", "--dag-id", dag_id, "--from-date", from_date, "--to-date", to_date, *extra)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        files = sorted(path.glob(f"attempt={try_number}*.log"))
        return files[0].read_text(errors="replace") if files else ""

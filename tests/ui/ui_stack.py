"""A demo sync kept running for the browser: emulators + embedded Airflow (api-server, scheduler, dag-processor).

The same steps as ``fbmkto demo`` (:mod:`airflow_provider_fbmkto.demo`) -- emulators, Marketo provisioning,
``authorize --code``, migrate, start, unpause -- but the stack stays up after the first scheduled run so the
browser can look at it. One difference makes the operator's story visible: the account is update-only
(``marketo.leads.create: false``) and none of its people is in Marketo yet, so the run writes the companies and
leaves the leads, activities and list memberships skipped as "no lead in Marketo"; the people appearing in
Marketo (a form fill, a CRM sync) is the fix, and "Replay failed" on the status page sends what waited.

Airflow's simple auth manager runs with a known admin password (a pre-written passwords file), so the test
logs in through Airflow's real login form.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from airflow_provider_fbmkto import demo
from airflow_provider_fbmkto.testing.airflow_stack import AirflowStack

ADMIN_PASSWORD = "fbmkto-ui-test-password"


@dataclass
class DemoStack:
    stack: AirflowStack
    home: Path
    fb: Any
    mkto: Any
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack.port}"

    def state_db(self) -> Any:
        """The state DB the DAG runs wrote (default SQLite file under the Airflow home)."""
        from airflow_provider_fbmkto.state import StateDB

        return StateDB(f"sqlite:///{self.home / 'fbmkto' / 'state.db'}", fernet_key=self.env["FBMKTO_FERNET_KEY"])


def run_cli(argv: list[str], env: dict[str, str]) -> None:
    """``fbmkto <argv>`` in a child process with ``env``."""
    _run([sys.executable, "-m", "airflow_provider_fbmkto.cli", *argv], env)


def _run(argv: list[str], env: dict[str, str]) -> None:
    import subprocess

    proc = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {proc.stderr[-2000:]}")


@contextmanager
def demo_stack(home: Path) -> Iterator[DemoStack]:
    """Run the demo account's latest daily interval through the scheduler and keep everything up."""
    from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

    home.mkdir(parents=True, exist_ok=True)
    today = datetime.now(timezone.utc).date()
    config = home / "fbmkto_accounts.yaml"
    update_only = "    marketo:\n      leads: {create: false}\n"
    config.write_text(demo.CONFIG.format(start=(today - timedelta(days=2)).isoformat()) + update_only)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    fernet = Fernet.generate_key().decode()
    with ExitStack() as stack:
        fb = stack.enter_context(demo.demo_freshbooks(today))  # the latest window holds the business's yesterday
        mkto = stack.enter_context(MarketoEmulator(lists={demo.PAID_LIST: "FB Paid", demo.OVERDUE_LIST: "FB Overdue"}))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__FERNET_KEY": fernet,
            "FBMKTO_FERNET_KEY": fernet,
            "FBMKTO_CONFIG": str(config),
            "FBMKTO_RETRY_DELAY_SECONDS": "5",
            "AIRFLOW_CONN_FRESHBOOKS_DEMO": fb.conn_json(),
            "AIRFLOW_CONN_MARKETO_DEFAULT": mkto.conn_json(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__WORKERS": "1",
        }
        for inherited in ("FBMKTO_AIRFLOW_API_URL", "AIRFLOW_CONN_FBMKTO_STATE", "AIRFLOW__CORE__DAGS_FOLDER"):
            env.pop(inherited, None)  # the page must find the api-server itself; the state DB is the default file
        run_cli(["setup-marketo", "--conn-id", "marketo_default"], env)
        run_cli(["authorize", "--conn-id", "freshbooks_demo", "--code", fb.issue_code()], env)
        airflow = stack.enter_context(AirflowStack(home, demo._dags_folder(home), env))
        airflow.migrate()
        airflow.airflow("pools", "set", "fbmkto_marketo", "8", "Marketo calls (instance limit 10)")
        airflow.start()
        airflow.wait_for_dags([demo.DAG_ID], timeout=120)
        airflow.airflow("dags", "unpause", demo.DAG_ID)
        airflow.wait_for_runs(demo.DAG_ID, 1, timeout=180)
        yield DemoStack(airflow, home, fb, mkto, airflow.env)

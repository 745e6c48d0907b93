"""What following docs/deploy.md ("Deploy into an existing Airflow") on a real installation turned up.

``fbmkto check`` with no ``--config`` must find the accounts file where the DAG file does (Airflow's DAGs
folder), not only in ``./dags``; and a Marketo connection that does not exist must be reported like a missing
FreshBooks one (a line naming the fix), not crash the command with a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from airflow_provider_fbmkto.testing import FreshBooksEmulator

CONFIG = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_nowhere
    schedule: "@daily"
    start_date: "2025-01-01"
"""


def test_check_reads_the_dags_folder_config_and_names_a_missing_marketo_connection(tmp_path: Path) -> None:
    dags, elsewhere = tmp_path / "airflow-dags", tmp_path / "somewhere-else"
    dags.mkdir()
    elsewhere.mkdir()
    (dags / "fbmkto_accounts.yaml").write_text(CONFIG)
    with FreshBooksEmulator() as fb:
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "FBMKTO_CONFIG" and not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__CORE__DAGS_FOLDER"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(tmp_path / "home"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW_CONN_FRESHBOOKS_ACME": fb.conn_json(),
                "FBMKTO_FERNET_KEY": Fernet.generate_key().decode(),
                # connections from the environment only (no metadata DB in this test)
                "_AIRFLOW_PROCESS_CONTEXT": "client",
            }
        )
        proc = subprocess.run(
            [sys.executable, "-m", "airflow_provider_fbmkto.cli", "check"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("state DB sqlite"), lines
    assert lines[0].endswith(": ok"), lines
    # The file in the DAGs folder was read: its account and both of its connections were tested, and the
    # Marketo preflight was skipped (said so) because its connection failed.
    assert [line.split(":")[0] for line in lines[1:]] == ["[FAIL] acme", "[FAIL] acme", "[--] acme"], lines
    assert "fbmkto authorize --conn-id freshbooks_acme" in lines[1]
    assert "Marketo connection 'marketo_nowhere' is not defined" in lines[2]
    assert "airflow connections add marketo_nowhere --conn-type marketo" in lines[2]
    assert "AIRFLOW_CONN_MARKETO_NOWHERE" in lines[2]
    assert "preflight skipped: connection marketo_nowhere failed above" in lines[3], lines

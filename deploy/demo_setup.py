"""One-shot set-up of the ``demo`` account against the emulators (``docker compose --profile emulators up``).

1. writes the accounts config (``$FBMKTO_CONFIG``, else ``<dags folder>/fbmkto_accounts.yaml``) with one account,
   ``demo``, unless a config of the user's is there (then it must already list ``demo``);
2. ``fbmkto setup-marketo --conn-id marketo_demo``: activity types and lead fields in the Marketo emulator;
3. asks the FreshBooks emulator for an authorization code (``POST /_emulator/code``: "the user clicked Allow")
   and runs ``fbmkto authorize --conn-id freshbooks_demo --code CODE``: the token pair goes, encrypted, into
   the state DB;
4. waits for the dag-processor to parse ``fbmkto_sync__demo``, unpauses it (the scheduler then runs the latest
   day) and creates a backfill of the days before it (a backfill that cannot be created, e.g. because the one
   of an earlier start is still running, is reported but does not fail the set-up).

Running it again is safe: it rewrites only its own config, re-provisions Marketo (no change when in place) and
authorizes again (the emulators keep their state in memory, so after an emulator restart this is needed).

The connections ``freshbooks_demo`` and ``marketo_demo`` come from ``AIRFLOW_CONN_*`` variables set in
docker-compose.yaml. Exits 0 when all of this is done; non-zero with the reason otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ACCOUNT = "demo"
DAG_ID = f"fbmkto_sync__{ACCOUNT}"
FRESHBOOKS_CONN_ID = "freshbooks_demo"
MARKETO_CONN_ID = "marketo_demo"
POOL = "fbmkto_marketo"
PAID_LIST, OVERDUE_LIST = 1001, 1002
#: First line of a config this script wrote; only such a file is ever rewritten.
MARKER = "# Written by deploy/demo_setup.py (docker compose --profile emulators)."


class DemoSetupError(Exception):
    """A step failed; the message says what to do."""


def demo_config(start: date) -> str:
    """The accounts config of the demo: one daily account on the emulators, syncing from ``start``."""
    return f"""\
{MARKER}
# It is rewritten on every start of the demo. To sync real accounts, replace this file with your own
# (see dags/fbmkto_accounts.example.yaml and docs/deploy.md); the demo then leaves it alone.
accounts:
  - name: {ACCOUNT}
    freshbooks_conn_id: {FRESHBOOKS_CONN_ID}
    marketo_conn_id: {MARKETO_CONN_ID}
    schedule: "@daily"
    timezone: UTC
    start_date: "{start.isoformat()}"
    pool: {POOL}
    matching:
      rules:
        - {{email: jordan.blake@gmail.com, company: Blake Consulting}}
    segments: {{paid_list_id: {PAID_LIST}, overdue_list_id: {OVERDUE_LIST}}}
"""


def write_config(path: Path, text: str) -> bool:
    """Write the demo config to ``path`` unless the user's own config is there.

    :return: True if written; False if the user's config already lists the ``demo`` account (kept as it is).
    :raises DemoSetupError: the user's config is there and has no ``demo`` account.
    """
    if path.exists():
        current = path.read_text(encoding="utf-8")
        if not current.startswith(MARKER):
            from airflow_provider_fbmkto.sync.config import load_config_collecting

            accounts, _errors = load_config_collecting(path)
            if any(a.name == ACCOUNT for a in accounts):
                return False
            snippet = "\n".join(text.splitlines()[4:])
            raise DemoSetupError(
                f"{path} is your own accounts config and has no valid account {ACCOUNT!r}; the demo does not "
                f"overwrite it. Move it aside, or add this account to it, then start the demo again:\n{snippet}"
            )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise DemoSetupError(
            f"cannot write {path} ({exc.strerror or type(exc).__name__}); the containers run as AIRFLOW_UID: "
            "set AIRFLOW_UID=$(id -u) in .env (Linux) so that ./dags is writable, then start the demo again"
        ) from None
    return True


def issue_code(freshbooks_url: str) -> str:
    """An authorization code from the FreshBooks emulator's control API (as if the user clicked "Allow")."""
    from airflow_provider_fbmkto.http import HttpClient, RetryPolicy

    # compose starts this job once the emulator is healthy: a few quick retries are plenty
    client = HttpClient(freshbooks_url, policy=RetryPolicy(attempts=3, base=0.5, cap=2.0), timeout=(5.0, 30.0))
    try:
        response = client.request("POST", "/_emulator/code", json={}, idempotent=True)
    finally:
        client.close()
    if response.status_code != 200:
        raise DemoSetupError(
            f"the FreshBooks emulator at {freshbooks_url} answered {response.status_code} to POST /_emulator/code; "
            "is the fb-emulator service the bundled emulator?"
        )
    code = response.json().get("code")
    if not isinstance(code, str) or not code:
        raise DemoSetupError(f"the FreshBooks emulator at {freshbooks_url} returned no code")
    return code


def fbmkto(*args: str) -> None:
    """Run an ``fbmkto`` command in this process; its own message explains a failure."""
    from airflow_provider_fbmkto.cli import main

    shown = ["<code>" if prev == "--code" else a for prev, a in zip(("", *args), args, strict=False)]
    print(f"$ fbmkto {' '.join(shown)}", flush=True)
    if main(list(args)) != 0:
        raise DemoSetupError(f"fbmkto {args[0]} failed (see above)")


def airflow(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["airflow", *args], capture_output=True, text=True, timeout=timeout, check=False)


def parse_dag_list(stdout: str) -> dict[str, bool]:
    """``airflow dags list -o json`` output -> ``{dag_id: is_paused}`` (warnings may precede the JSON line)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("["):
            try:
                rows = json.loads(line)
            except json.JSONDecodeError:
                continue
            return {str(r["dag_id"]): str(r.get("is_paused")).lower() == "true" for r in rows if "dag_id" in r}
    return {}


def wait_and_unpause(
    dag_id: str,
    *,
    timeout: float,
    interval: float = 5.0,
    run: Callable[..., subprocess.CompletedProcess[str]] = airflow,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until the dag-processor has stored ``dag_id``, then unpause it.

    (``airflow dags unpause`` of a DAG not parsed yet exits 0 with "No paused DAGs were found", so the DAG's
    presence is checked with ``airflow dags list`` first.)
    """
    deadline = clock() + timeout
    while dag_id not in parse_dag_list(run("dags", "list", "-o", "json").stdout):
        if clock() >= deadline:
            raise DemoSetupError(
                f"{dag_id} did not appear within {timeout:.0f}s; look for import errors with: "
                "docker compose run --rm airflow-cli airflow dags list-import-errors"
            )
        sleep(interval)
    result = run("dags", "unpause", dag_id)
    if result.returncode != 0 or parse_dag_list(run("dags", "list", "-o", "json").stdout).get(dag_id, True):
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DemoSetupError(f"could not unpause {dag_id}: {detail[0]}")
    print(f"unpaused {dag_id}: the scheduler now runs its latest daily interval", flush=True)


def backfill(dag_id: str, *, first: date, last: date) -> None:
    result = airflow(
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        first.isoformat(),
        "--to-date",
        last.isoformat(),
        "--reprocess-behavior",
        "none",
        "--max-active-runs",
        "1",
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise DemoSetupError(f"airflow backfill create failed:\n{tail}")
    print(f"backfill of {dag_id} from {first} to {last} created", flush=True)


def default_config_path() -> Path:
    from airflow.configuration import conf

    from airflow_provider_fbmkto.sync.config_schema import config_path

    return config_path(conf.get("core", "dags_folder"), os.environ)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="set up the fbmkto demo account against the bundled emulators")
    parser.add_argument(
        "--freshbooks-url", default=os.environ.get("FBMKTO_DEMO_FRESHBOOKS_URL", "http://fb-emulator:8080")
    )
    parser.add_argument("--config", type=Path, help="accounts config to write (default: where the DAG file reads it)")
    parser.add_argument("--backfill-days", type=int, default=int(os.environ.get("FBMKTO_DEMO_BACKFILL_DAYS", "3")))
    parser.add_argument("--dag-timeout", type=float, default=300.0, help="seconds to wait for the DAG to be parsed")
    parser.add_argument("--no-airflow", action="store_true", help="skip unpause and backfill (no Airflow DB needed)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from airflow_provider_fbmkto.exceptions import FbmktoError

    args = build_parser().parse_args(argv)
    today = datetime.now(timezone.utc).date()
    backfill_days = max(args.backfill_days, 0)
    try:
        path = args.config or default_config_path()
        if write_config(path, demo_config(today - timedelta(days=backfill_days + 1))):
            print(f"wrote the demo accounts config {path}", flush=True)
        else:
            print(f"{path} already lists the account {ACCOUNT!r}; left as it is", flush=True)
        fbmkto("setup-marketo", "--conn-id", MARKETO_CONN_ID)
        fbmkto("authorize", "--conn-id", FRESHBOOKS_CONN_ID, "--code", issue_code(args.freshbooks_url))
        if not args.no_airflow:
            wait_and_unpause(DAG_ID, timeout=args.dag_timeout)
            if backfill_days:
                try:
                    backfill(DAG_ID, first=today - timedelta(days=backfill_days), last=today - timedelta(days=1))
                except DemoSetupError as exc:  # e.g. the backfill of an earlier start is still running
                    print(f"demo-setup: no backfill this time: {exc}", file=sys.stderr)
    except (DemoSetupError, FbmktoError) as exc:
        print(f"demo-setup: {exc}", file=sys.stderr)
        return 1
    print(
        f"\ndemo ready: open http://localhost:8080/dags/{DAG_ID} ; Marketo emulator state: "
        "http://localhost:18081/_emulator/leads (and /companies, /activities)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

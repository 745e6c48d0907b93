"""``fbmkto demo`` / ``make demo``: the real DAG, run by a real (embedded) Airflow, against the emulators.

1. start the FreshBooks emulator (seeded with a small demo business) and the Marketo emulator;
2. provision Marketo (``fbmkto setup-marketo``) and authorize FreshBooks (``fbmkto authorize --code``);
3. migrate an embedded Airflow (SQLite, LocalExecutor) and start its scheduler, dag-processor and api-server;
4. unpause ``fbmkto_sync__demo``: the scheduler runs the latest daily interval; then ``airflow backfill
   create`` runs the days before it;
5. print each run's report and two leads' activity timelines as Marketo now has them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

ACCOUNT = "demo"
DAG_ID = f"fbmkto_sync__{ACCOUNT}"
PAID_LIST, OVERDUE_LIST = 1001, 1002
CONFIG = f"""\
accounts:
  - name: {ACCOUNT}
    freshbooks_conn_id: freshbooks_demo
    marketo_conn_id: marketo_default
    schedule: "@daily"
    timezone: UTC
    start_date: "{{start}}"
    pool: fbmkto_marketo
    matching:
      rules:
        - {{{{email: jordan.blake@gmail.com, company: Blake Consulting}}}}
    segments: {{{{paid_list_id: {PAID_LIST}, overdue_list_id: {OVERDUE_LIST}}}}}
"""


def _dags_folder(home: Path) -> Path:
    """The demo's DAGs folder: the package's DAG files, copied as ``fbmkto init-dags`` copies them."""
    from airflow_provider_fbmkto.bundled import init_dags

    folder = home / "dags"
    init_dags(folder)
    return folder


def demo_freshbooks(today: date) -> FreshBooksEmulator:
    """The FreshBooks emulator with the demo business dated relative to ``today``, the UTC date the demo's
    latest daily window ends on (the account runs in UTC): that window then always holds the business's
    yesterday, whatever the hour. The seed's own default, the emulator's US/Eastern today, is the day before
    between midnight UTC and midnight Eastern, and the latest window would be one without activities.
    """
    from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
    from airflow_provider_fbmkto.testing.freshbooks.seed import seed

    fb = FreshBooksEmulator()
    seed(fb.model, "demo", as_of=today)
    return fb


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(*, home: Path | None = None, backfill_days: int = 7) -> int:
    from airflow_provider_fbmkto.cli import main as fbmkto
    from airflow_provider_fbmkto.testing.airflow_stack import AirflowStack
    from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

    started = time.monotonic()
    base = Path(os.environ.get("AIRFLOW_HOME") or Path.cwd() / ".airflow")
    home = (home or base / "demo").resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    today = datetime.now(timezone.utc).date()
    config = home / "fbmkto_accounts.yaml"
    config.write_text(CONFIG.format(start=(today - timedelta(days=backfill_days + 1)).isoformat()))
    fernet = Fernet.generate_key().decode()

    _say("starting the FreshBooks and Marketo emulators")
    with (
        demo_freshbooks(today) as fb,
        MarketoEmulator(lists={PAID_LIST: "FB Paid", OVERDUE_LIST: "FB Overdue"}) as mkto,
    ):
        print(f"FreshBooks emulator {fb.url} (demo business), Marketo emulator {mkto.url}")
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__FERNET_KEY": fernet,
            "FBMKTO_FERNET_KEY": fernet,
            "FBMKTO_CONFIG": str(config),
            "FBMKTO_RETRY_DELAY_SECONDS": "5",
            "AIRFLOW_CONN_FRESHBOOKS_DEMO": fb.conn_json(),
            "AIRFLOW_CONN_MARKETO_DEFAULT": mkto.conn_json(),
        }
        os.environ.update(env)

        _say("fbmkto setup-marketo --conn-id marketo_default")
        if fbmkto(["setup-marketo", "--conn-id", "marketo_default"]):
            return 1
        _say("fbmkto authorize --conn-id freshbooks_demo --code <code from the emulator's consent page>")
        if fbmkto(["authorize", "--conn-id", "freshbooks_demo", "--code", fb.issue_code()]):
            return 1

        stack = AirflowStack(home, _dags_folder(home), env)
        with stack:
            _say("migrating the embedded Airflow and starting scheduler, dag-processor and api-server")
            stack.migrate()
            stack.airflow("pools", "set", "fbmkto_marketo", "8", "Marketo calls (instance limit 10)")
            stack.start()
            stack.wait_for_dags([DAG_ID], timeout=180)

            _say(f"unpausing {DAG_ID}: the scheduler runs the latest daily interval")
            stack.airflow("dags", "unpause", DAG_ID)
            stack.wait_for_runs(DAG_ID, 1, timeout=300)

            first = (today - timedelta(days=backfill_days)).isoformat()
            last = (today - timedelta(days=1)).isoformat()
            _say(f"airflow backfill create --dag-id {DAG_ID} --from-date {first} --to-date {last}")
            stack.backfill(DAG_ID, first, last, "--reprocess-behavior", "none", "--max-active-runs", "1")
            runs = stack.wait_for_runs(DAG_ID, 1 + backfill_days - 1, timeout=600)

        _print_runs(runs, home)
        _print_marketo(mkto)
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; Airflow home: {home}")
    return 0 if all(r["state"] == "success" for r in runs) else 1


def _print_runs(runs: list[dict[str, Any]], home: Path) -> None:
    _say(f"{len(runs)} DAG runs")
    reports = {p.stem: json.loads(p.read_text()) for p in (home / "fbmkto" / "reports" / ACCOUNT).glob("*.json")}
    for run in sorted(runs, key=lambda r: r["logical_date"] or ""):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run["run_id"])
        rep = reports.get(safe, {})
        written = {k: v.get("written", 0) for k, v in rep.get("this_run", {}).items()}
        window = rep.get("window", {})
        print(
            f"{run['state']:<8} {run['run_id']:<40} "
            f"window {window.get('start', '?')[:10]}..{window.get('end', '?')[:10]}"
            f"  written {written}"
        )
    latest = max(reports.values(), key=lambda r: r["window"]["end"], default=None)
    if latest:
        budget = latest["marketo_budget"]
        print(
            f"Marketo calls today: {budget['used_today']} of {budget['daily_budget']}; "
            f"rows needing attention: {len(latest['failures'])}"
        )


def _print_marketo(mkto: Any) -> None:
    leads = mkto.leads()
    types = {t["id"]: t["name"] for t in mkto.activity_types()}
    paid, overdue = set(mkto.list_members(PAID_LIST)), set(mkto.list_members(OVERDUE_LIST))
    _say(
        f"Marketo now has {len(leads)} leads, {len(mkto.companies())} companies, "
        f"{len(mkto.activities())} FreshBooks activities; paid list {len(paid)}, overdue list {len(overdue)}"
    )
    for company in mkto.companies():
        print(
            f"  company {company.get('company')!s:<24} status {company.get('fbPaymentStatus')!s:<8} "
            f"balance {company.get('fbOutstandingBalance')!s:>10} invoices {company.get('fbInvoiceCount')} "
            f"terms {company.get('fbPaymentTerms')}"
        )
    picks = [lead for lead in leads if lead["id"] in overdue][:1] + [lead for lead in leads if lead["id"] in paid][:1]
    for lead in picks:
        _say(f"timeline of {lead['email']} (fbPaymentStatus={lead.get('fbPaymentStatus')})")
        for act in mkto.activities(lead["id"]):
            attrs = {a.get("name") or a.get("apiName"): a.get("value") for a in act.get("attributes", [])}
            print(
                f"  {act['activityDate']}  {types.get(act['activityTypeId'], act['activityTypeId']):<17} "
                f"{act['primaryAttributeValue']:<12} {attrs.get('amount', '')} {attrs.get('currency', '')}"
            )

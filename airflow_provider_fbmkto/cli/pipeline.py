"""``fbmkto ledger …``, ``fbmkto check``, ``fbmkto init-dags`` and ``fbmkto demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from airflow_provider_fbmkto.cli import accounts


def register(sub: Any) -> None:
    led = sub.add_parser("ledger", help="inspect and replay the sync ledger of an account")
    lsub = led.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("status", "counts per kind and status, last runs", run_status),
        ("show-failed", "rows Marketo skipped or that failed, with the reason", run_show_failed),
        ("replay", "put skipped and failed rows back to pending; the next run sends them", run_replay),
        ("report", "the report of the account's latest run (or --run-id), as stored in the state DB", run_report),
    ):
        p = lsub.add_parser(name, help=helptext)
        p.add_argument("--account", required=True, help="account name from the accounts config")
        accounts.add_state_conn_argument(p)
        if name == "show-failed":
            p.add_argument("--kind", choices=("company", "lead", "activity", "list"), help="only this kind")
            p.add_argument("--limit", type=int, default=50)
        if name == "replay":
            p.add_argument("--kind", choices=("company", "lead", "activity", "list"), help="only this kind")
        if name == "report":
            p.add_argument("--run-id", help="the run (default: the latest run that wrote a report)")
            p.add_argument("--json", action="store_true", help="print the whole report as JSON")
        p.set_defaults(func=func)

    chk = sub.add_parser("check", help="test every configured connection (FreshBooks, Marketo, state DB)")
    accounts.add_config_argument(chk)
    chk.set_defaults(func=run_check)

    init = sub.add_parser(
        "init-dags",
        help="copy the provider's DAG files and the example accounts config into a DAGs folder",
        description="Copy freshbooks_to_marketo.py and fbmkto_config_check.py into DIR (created if absent; "
        "re-run after an upgrade to update them) and the example accounts config as fbmkto_accounts.yaml "
        "(never overwritten once it exists).",
    )
    init.add_argument("dir", metavar="DIR", help="Airflow's DAGs folder, e.g. $AIRFLOW_HOME/dags")
    init.set_defaults(func=run_init_dags)

    demo = sub.add_parser("demo", help="run the real DAG against the bundled emulators and print what happened")
    demo.add_argument("--home", help="AIRFLOW_HOME for the demo (default: $AIRFLOW_HOME/demo, wiped first)")
    demo.add_argument("--backfill-days", type=int, default=7)
    demo.set_defaults(func=run_demo)


def _state(args: argparse.Namespace) -> Any:
    from airflow_provider_fbmkto.state import StateDB

    return StateDB.from_airflow(args.state_conn_id)


def run_status(args: argparse.Namespace) -> int:
    db = _state(args)
    counts = db.ledger.counts(args.account)
    if not counts:
        print(f"ledger of account {args.account!r} is empty (no run has planned anything yet)")
        return 0
    kinds = sorted({k for k, _ in counts})
    from airflow_provider_fbmkto.state import LedgerStatus

    statuses = tuple(s.value for s in LedgerStatus)
    print(f"{'kind':<10}" + "".join(f"{s:>11}" for s in statuses))
    for kind in kinds:
        print(f"{kind:<10}" + "".join(f"{counts.get((kind, s), 0):>11}" for s in statuses))
    for run in db.runs.recent(args.account, limit=5):
        window = f"{run.window_start:%Y-%m-%d %H:%M} .. {run.window_end:%Y-%m-%d %H:%M}" if run.window_start else "?"
        print(f"run {run.run_id}: {run.status} (window {window})")
    return 0


def run_show_failed(args: argparse.Namespace) -> int:
    rows = _state(args).ledger.failures(args.account, kind=args.kind, limit=args.limit)
    if not rows:
        print(f"no skipped or failed rows for account {args.account!r}")
        return 0
    for r in rows:
        print(f"{r.status!s:<8} {r.kind:<9} attempts={r.attempts} {r.key}\n         reason: {r.last_error}")
    print(f"{len(rows)} rows; after fixing the cause: fbmkto ledger replay --account {args.account}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    n = _state(args).ledger.retry_failed(args.account, args.kind, include_skipped=True)
    print(
        f"{n} rows of {args.account!r} are pending again; the next run sends them "
        f"(now: airflow dags trigger fbmkto_sync__{args.account})"
    )
    return 0


def run_report(args: argparse.Namespace) -> int:
    import json

    from airflow_provider_fbmkto.pipeline.report import render_table

    db = _state(args)
    if args.run_id:
        run = db.runs.get(args.account, args.run_id)
        runs = [run] if run is not None else []
    else:
        runs = db.runs.recent(args.account, limit=50)
    report = next((r.summary for r in runs if r.summary and "this_run" in r.summary), None)
    if report is None:
        which = f"run {args.run_id!r}" if args.run_id else "any run"
        print(
            f"no report of {which} of account {args.account!r} in the state DB (the report task writes it at the end "
            f"of each run); runs: fbmkto ledger status --account {args.account}"
        )
        return 1
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else render_table(report))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.state import StateDB
    from airflow_provider_fbmkto.sync.ownership import overlap_warnings

    config = accounts.load_accounts(args.config)
    assert config is not None
    ok = True
    for warning in overlap_warnings(config.accounts):  # a warning: such runs hold writes, they do not fail
        print(f"[warn] {warning}")
    db = StateDB.from_airflow()
    print(f"state DB {db.url}: ok")
    tested: dict[tuple[str, str], bool] = {}
    for acct in config.accounts:
        for kind, conn_id in (("freshbooks", acct.freshbooks_conn_id), ("marketo", acct.marketo_conn_id)):
            if (kind, conn_id) in tested:
                continue
            hook: Any = FreshBooksHook(conn_id, state=db) if kind == "freshbooks" else MarketoHook(conn_id)
            good, message = hook.test_connection()
            tested[(kind, conn_id)] = good
            ok = ok and good
            print(f"[{'ok' if good else 'FAIL'}] {acct.name}: {kind} {conn_id}: {message}")
        if tested[("marketo", acct.marketo_conn_id)]:
            ok = _preflight(acct, db) and ok
        else:
            print(f"[--] {acct.name}: Marketo preflight skipped: connection {acct.marketo_conn_id} failed above")
    return 0 if ok else 1


def _preflight(acct: Any, db: Any) -> bool:
    """The load's preflight for one account, printed: what its Marketo instance lacks, and the fixes."""
    from airflow_provider_fbmkto.exceptions import FbmktoError
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.pipeline.preflight import check_marketo, companies_refused

    try:
        hook = MarketoHook(acct.marketo_conn_id)
        report = check_marketo(hook, acct, companies_refused=companies_refused(db, acct.name))
    except FbmktoError as exc:  # the connection test above already said why
        print(f"[FAIL] {acct.name}: Marketo preflight not run: {exc}")
        return False
    if report.ready:
        notes = "".join(f"; {n}" for n in report.notes)
        print(f"[ok] {acct.name}: Marketo preflight: activity types, fields and segments in place{notes}")
        return True
    print(f"[FAIL] {acct.name}: {report.message(acct.name, hook.instance)}")
    return False


def run_init_dags(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.bundled import init_dags

    copied = init_dags(Path(args.dir))
    for path in copied.written:
        print(f"wrote {path}")
    for path in copied.kept:
        print(f"kept {path} (it exists; the example is not copied over it)")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.demo import run

    return run(home=Path(args.home) if args.home else None, backfill_days=args.backfill_days)

"""``fbmkto ledger …``, ``fbmkto check`` and ``fbmkto demo``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from airflow_provider_fbmkto.exceptions import ConfigError


def register(sub: Any) -> None:
    led = sub.add_parser("ledger", help="inspect and replay the sync ledger of an account")
    lsub = led.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    for name, helptext, func in (
        ("status", "counts per kind and status, last runs", run_status),
        ("show-failed", "rows Marketo skipped or that failed, with the reason", run_show_failed),
        ("replay", "put skipped and failed rows back to pending; the next run sends them", run_replay),
    ):
        p = lsub.add_parser(name, help=helptext)
        p.add_argument("--account", required=True, help="account name from the accounts config")
        p.add_argument("--state-conn-id", default="fbmkto_state", help="connection of the state DB")
        if name == "show-failed":
            p.add_argument("--kind", choices=("company", "lead", "activity", "list"), help="only this kind")
            p.add_argument("--limit", type=int, default=50)
        if name == "replay":
            p.add_argument("--kind", choices=("company", "lead", "activity", "list"), help="only this kind")
        p.set_defaults(func=func)

    chk = sub.add_parser("check", help="test every configured connection (FreshBooks, Marketo, state DB)")
    chk.add_argument(
        "--config",
        help="accounts config file (default: $FBMKTO_CONFIG, else fbmkto_accounts.yaml in Airflow's DAGs folder, "
        "else dags/fbmkto_accounts.yaml)",
    )
    chk.set_defaults(func=run_check)

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
    statuses = ("pending", "in_flight", "written", "skipped", "failed")
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


def _default_config(name: str) -> str:
    """``name`` in Airflow's ``[core] dags_folder`` (where the DAG file looks for it), else in ``./dags``."""
    from airflow.configuration import conf

    in_dags_folder = Path(conf.get("core", "dags_folder", fallback="") or "dags") / name
    return str(in_dags_folder if in_dags_folder.exists() else Path("dags") / name)


def run_check(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.state import StateDB
    from airflow_provider_fbmkto.sync.config import load_config
    from airflow_provider_fbmkto.sync.config_schema import CONFIG_ENV, DEFAULT_CONFIG_NAME

    path = args.config or os.environ.get(CONFIG_ENV) or _default_config(DEFAULT_CONFIG_NAME)
    if not Path(path).exists():
        raise ConfigError(f"no accounts config at {path}; pass --config or set {CONFIG_ENV}")
    config = load_config(path)
    ok = True
    db = StateDB.from_airflow()
    print(f"state DB {db.url}: ok")
    checked: set[tuple[str, str]] = set()
    for acct in config.accounts:
        for kind, conn_id in (("freshbooks", acct.freshbooks_conn_id), ("marketo", acct.marketo_conn_id)):
            if (kind, conn_id) in checked:
                continue
            checked.add((kind, conn_id))
            hook: Any = FreshBooksHook(conn_id, state=db) if kind == "freshbooks" else MarketoHook(conn_id)
            good, message = hook.test_connection()
            ok = ok and good
            print(f"[{'ok' if good else 'FAIL'}] {acct.name}: {kind} {conn_id}: {message}")
    return 0 if ok else 1


def run_demo(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.demo import run

    return run(home=Path(args.home) if args.home else None, backfill_days=args.backfill_days)

"""``fbmkto owners list|release``: which account owns each Marketo lead e-mail and company key (sync/ownership.py)."""

from __future__ import annotations

import argparse
from typing import Any

from airflow_provider_fbmkto.cli import accounts


def register(sub: Any) -> None:
    own = sub.add_parser("owners", help="which account owns each Marketo person and company; release ownership")
    osub = own.add_subparsers(dest="owners_command", metavar="ACTION", required=True)
    lst = osub.add_parser("list", help="owned lead e-mails and company keys, oldest first")
    lst.add_argument("--account", help="only this account's")
    lst.add_argument("--limit", type=int, default=100)
    rel = osub.add_parser(
        "release",
        help="give up an account's ownership; the next account to write a released key owns it",
        description="Give up the ownership of an account (every key, or the given ones). The writes other accounts "
        "had held for those keys go out after a replay: fbmkto ledger replay --account OTHER.",
    )
    rel.add_argument("--account", required=True, help="the owning account")
    rel.add_argument("--email", action="append", default=[], help="a lead e-mail (repeatable)")
    rel.add_argument("--company", action="append", default=[], help="a company key, e.g. bigco.io (repeatable)")
    rel.add_argument("--all", action="store_true", help="every key the account owns")
    for p in (lst, rel):
        accounts.add_state_conn_argument(p)
    lst.set_defaults(func=run_list)
    rel.set_defaults(func=run_release)


def _state(args: argparse.Namespace) -> Any:
    from airflow_provider_fbmkto.state import StateDB

    return StateDB.from_airflow(args.state_conn_id)


def run_list(args: argparse.Namespace) -> int:
    rows = _state(args).owners.owned(args.account, limit=args.limit)
    if not rows:
        print("no owned keys" + (f" of account {args.account}" if args.account else ""))
    for r in rows:
        print(f"{r.instance}  {r.kind:<7}  {r.key}  owned by {r.account} since {r.claimed_at.isoformat()}")
    return 0


def run_release(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.exceptions import ConfigError

    if not (args.all or args.email or args.company):
        raise ConfigError("name what to release: --email EMAIL, --company KEY (repeatable), or --all")
    owners = _state(args).owners
    if args.all:
        released = owners.release(args.account)
    else:
        released = owners.release(args.account, kind="lead", keys=args.email) if args.email else 0
        released += owners.release(args.account, kind="company", keys=args.company) if args.company else 0
    print(
        f"released {released} keys of account {args.account}; the next account to write them owns them "
        "(replay the accounts whose writes were held: fbmkto ledger replay --account NAME)"
    )
    return 0

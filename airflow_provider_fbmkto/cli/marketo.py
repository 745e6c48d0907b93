"""``fbmkto setup-marketo``: create the Marketo schema the sync writes into (idempotent).

Creates and approves the custom activity types (fbInvoiceSent, fbPaymentReceived, fbInvoiceOverdue) and the
lead fields (fbPaymentStatus, fbOutstandingBalance, fbLastPaymentDate) that are missing, and lists the company
fields an admin must add in Marketo's UI (the API cannot create them). A second run changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "setup-marketo",
        help="create and approve the Marketo activity types and lead fields the sync writes (idempotent)",
        description="Create and approve the custom activity types and lead fields that are missing, and list the "
        "company fields to create in Marketo's admin UI. Safe to run again: it then sends no change.",
    )
    p.add_argument("--conn-id", default="marketo_default", help="the marketo connection (default marketo_default)")
    p.add_argument("--state-conn-id", default="fbmkto_state", help="connection of the state DB (call budget)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be created")
    p.add_argument(
        "--leave-draft",
        action="append",
        default=[],
        metavar="API_NAME",
        help="create this activity type but leave it a draft for a Marketo admin to approve (repeatable)",
    )
    p.set_defaults(func=run_setup)


def run_setup(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.hooks.marketo_schema import ensure_schema

    hook = MarketoHook(args.conn_id, state_conn_id=args.state_conn_id)
    report = ensure_schema(hook, dry_run=args.dry_run, leave_drafts=frozenset(args.leave_draft))
    mode = " (dry run: nothing was changed; 'created'/'approved' below are what a real run would do)"
    print(f"Marketo {hook.instance} (connection {args.conn_id}){mode if args.dry_run else ''}:")
    for line in report.lines():
        print(f"  {line}")
    return 1 if report.failed_lead_fields else 0

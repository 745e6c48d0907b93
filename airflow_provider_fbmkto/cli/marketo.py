"""``fbmkto setup-marketo``: create the Marketo schema the sync writes into (idempotent).

Creates the custom activity types the accounts config names (default fbInvoiceSent, fbPaymentReceived,
fbInvoiceOverdue), gives them their attributes and approves them; creates the lead fields (fbPaymentStatus,
fbOutstandingBalance, fbLastPaymentDate) that are missing; and lists the company fields an admin must add in
Marketo's UI (the API cannot create them). A second run changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from airflow_provider_fbmkto.cli import accounts


def register(sub: Any) -> None:
    p = sub.add_parser(
        "setup-marketo",
        help="create and approve the Marketo activity types and lead fields the sync writes (idempotent)",
        description="Create the custom activity types that the accounts config names for this connection (with "
        "their attributes) and approve them, create the lead fields that are missing, and list the company fields "
        "to create in Marketo's admin UI. Safe to run again: it then sends no change.",
    )
    p.add_argument("--conn-id", default="marketo_default", help="the marketo connection (default marketo_default)")
    accounts.add_state_conn_argument(p, " (call budget)")
    accounts.add_config_argument(
        p,
        "; its accounts that write through --conn-id name the activity types to provision "
        "(without a config file: the default names)",
    )
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

    config = accounts.load_accounts(args.config, required=False)
    mine = [a for a in config.accounts if a.marketo_conn_id == args.conn_id] if config else []
    hook = MarketoHook(args.conn_id, state_conn_id=args.state_conn_id)
    wanted = _schema_of(mine, hook)
    report = ensure_schema(hook, **wanted, dry_run=args.dry_run, leave_drafts=frozenset(args.leave_draft))
    mode = " (dry run: nothing was changed; 'created'/'approved' below are what a real run would do)"
    print(f"Marketo {hook.instance} (connection {args.conn_id}){mode if args.dry_run else ''}:")
    if config is None:
        print("  no accounts config found: provisioning the default activity type names")
    elif not mine:
        print(f"  no account of {config.source} writes through {args.conn_id}: provisioning the default names")
    else:
        print(f"  for accounts {', '.join(a.name for a in mine)} of {config.source}")
    for line in report.lines():
        print(f"  {line}")
    return 1 if report.failed_lead_fields else 0


def _schema_of(mine: list[Any], hook: Any) -> dict[str, Any]:
    """The activity types and fields the accounts of one connection write (the provider's defaults if none).

    Lead fields for the company facts are wanted where those facts go on leads: ``companies: lead_fields``, or
    ``auto`` on an instance that refuses company writes (asked once, one call).
    """
    from airflow_provider_fbmkto.hooks.marketo_schema import activity_types_for, company_fields_for, lead_fields_for
    from airflow_provider_fbmkto.sync.marketo_fit import CompaniesMode, MarketoFit
    from airflow_provider_fbmkto.sync.plan import ActivityTypeNames

    fits = [(a.activity_types, a.marketo) for a in mine] or [(ActivityTypeNames(), MarketoFit())]
    refused = any(fit.companies is CompaniesMode.AUTO for _, fit in fits) and not hook.companies_writable()
    lead_fields: list[Any] = []
    for _, fit in fits:
        lead_fields += lead_fields_for(fit, company_facts=fit.company_facts_on_leads(companies_refused=refused))
    return {
        "types": [t for names, _ in fits for t in activity_types_for(names)],
        "lead_fields": lead_fields,
        "company_fields": [] if refused else [f for _, fit in fits for f in company_fields_for(fit)],
    }

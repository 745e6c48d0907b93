"""Preflight: is the Marketo instance ready for this account's writes? Checked before ``load`` sends anything.

A run against an unprovisioned or half-provisioned instance would otherwise send every batch and have
Marketo skip each record (``1006 Field 'amount' not found``, ``1013`` for a draft type or a deleted list),
leaving thousands of skipped rows. The preflight costs a few read calls once per run:

* ``GET /rest/v1/activities/external/types.json`` -- the account's three activity types exist, are approved
  and carry every attribute the provider's payloads use (the answer also gives the type ids the load writes
  with, so it replaces the load's own read);
* ``GET /rest/v1/leads/describe2.json`` -- the lead fields the provider writes exist;
* ``GET /rest/v1/companies/describe.json`` -- the company fields exist; when some are missing, one probe
  tells whether companies are writable at all (on a CRM-synced instance they are not, and the company
  facts are left out, so missing company fields are then no problem);
* ``GET /rest/v1/lists/{id}.json`` / ``GET /rest/v1/campaigns/{id}.json`` per configured segment list and
  smart campaign.

Anything missing is reported in one message naming each problem and its fix; ``load`` raises it so that
Airflow fails the task without retrying (no retry can create a field), and ``fbmkto check`` prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.hooks.marketo_schema import (
    ActivityTypeSpec,
    FieldSpec,
    activity_types_for,
    company_fields_for,
    lead_fields_for,
    missing_attributes,
    names_of,
)
from airflow_provider_fbmkto.sync.marketo_fit import CompaniesMode

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.state.db import StateDB
    from airflow_provider_fbmkto.sync.config_schema import AccountConfig


class PreflightFailed(ConfigError):
    """The Marketo instance lacks something the account writes; no retry can fix it, the message says who can."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing missing in Marketo, and what to do about it."""

    what: str
    fix: str


@dataclass(slots=True)
class PreflightReport:
    """What the preflight found.

    :param type_ids: apiName → activity type id of every custom type (the load writes with these).
    :param problems: what is missing (empty: ready).
    :param notes: what is fine but worth saying (e.g. companies are read-only on a CRM-synced instance).
    :param calls: Marketo calls the preflight made.
    """

    type_ids: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    calls: int = 0

    @property
    def ready(self) -> bool:
        return not self.problems

    def message(self, account: str, instance: str) -> str:
        """One message: every problem with its fix, then the fixes once each."""
        lines = [f"Marketo {instance} is not ready for account {account!r}; nothing was sent:"]
        lines += [f"  - {p.what}" for p in self.problems]
        fixes = list(dict.fromkeys(p.fix for p in self.problems))
        lines.append("Fix: " + "; ".join(fixes) + ". Then run the DAG again.")
        return "\n".join(lines)


def setup_command(conn_id: str) -> str:
    return f"run `fbmkto setup-marketo --conn-id {conn_id}`"


def check_marketo(hook: MarketoHook, account: AccountConfig, *, companies_refused: bool = False) -> PreflightReport:
    """Check the instance behind ``hook`` against what ``account`` writes (read calls only).

    :param companies_refused: Marketo refused the account's company writes when last tried (the run then plans
        the company facts onto lead fields, as ``marketo.companies`` says, and no company fields are needed).
    """
    report = PreflightReport()
    before = hook.http.stats.attempts
    setup = setup_command(account.marketo_conn_id)
    fit = account.marketo
    _check_types(hook, activity_types_for(account.activity_types), report, setup)
    wanted = lead_fields_for(fit, company_facts=fit.company_facts_on_leads(companies_refused=companies_refused))
    lead_fields = names_of(hook.describe_leads())
    missing = [f.name for f in wanted if f.name not in lead_fields]
    if missing:
        report.problems.append(Problem(f"lead fields missing: {', '.join(missing)}", setup))
    if not companies_refused:
        _check_companies(hook, company_fields_for(fit), report)
    _check_segments(hook, account, report)
    report.calls = hook.http.stats.attempts - before
    return report


def require_ready(hook: MarketoHook, account: AccountConfig, *, companies_refused: bool = False) -> PreflightReport:
    """:func:`check_marketo`, raising :class:`PreflightFailed` with the whole story when anything is missing."""
    report = check_marketo(hook, account, companies_refused=companies_refused)
    if not report.ready:
        raise PreflightFailed(report.message(account.name, hook.instance))
    return report


def _check_types(hook: MarketoHook, specs: Iterable[ActivityTypeSpec], report: PreflightReport, setup: str) -> None:
    listed = {str(t.get("apiName")): t for t in hook.list_activity_types()}
    report.type_ids = {name: int(t["id"]) for name, t in listed.items() if t.get("id") is not None}
    for spec in specs:
        described = listed.get(spec.api_name)
        if described is None:
            report.problems.append(Problem(f"activity type {spec.api_name} ({spec.name}) does not exist", setup))
            continue
        lacking = missing_attributes(spec, described)
        if lacking:
            names = ", ".join(a.name for a in lacking)
            report.problems.append(Problem(f"activity type {spec.api_name} lacks attributes {names}", setup))
        status = str(described.get("status", "approved"))
        if status != "approved":
            report.problems.append(
                Problem(
                    f"activity type {spec.api_name} is not approved (status {status}): Marketo refuses its activities",
                    f"{setup}, or approve it in Marketo Admin > Marketo Custom Activities",
                )
            )


def _check_companies(hook: MarketoHook, wanted: Iterable[FieldSpec], report: PreflightReport) -> None:
    wanted = list(wanted)
    if not wanted:  # the account writes no companies (marketo.companies: lead_fields / off)
        return
    company_fields = names_of(hook.describe_companies())
    missing = [f for f in wanted if f.name not in company_fields]
    if not missing:
        return
    if not hook.companies_writable():
        report.notes.append(
            "companies are read-only on this instance (CRM-synced, 1018): company fields are not written"
        )
        return
    listed = ", ".join(f"{f.name} ({f.data_type})" for f in missing)
    report.problems.append(
        Problem(
            f"company fields missing: {listed}",
            "create the company fields in Marketo Admin > Field Management (the API cannot create them; "
            "`fbmkto setup-marketo` lists them)",
        )
    )


def _check_segments(hook: MarketoHook, account: AccountConfig, report: PreflightReport) -> None:
    segments = account.segments
    where = "the accounts config"
    for key in ("paid_list_id", "overdue_list_id"):
        list_id = getattr(segments, key)
        if list_id is not None and hook.get_static_list(list_id) is None:
            report.problems.append(
                Problem(
                    f"static list {list_id} (segments.{key}) does not exist",
                    f"create the static list in Marketo, or correct segments.{key} in {where}",
                )
            )
    for key in ("on_paid_campaign_id", "on_overdue_campaign_id"):
        campaign_id = getattr(segments, key)
        if campaign_id is None:
            continue
        campaign: Any = hook.get_smart_campaign(campaign_id)
        if campaign is None:
            report.problems.append(
                Problem(
                    f"smart campaign {campaign_id} (segments.{key}) does not exist",
                    f"create the smart campaign in Marketo, or correct segments.{key} in {where}",
                )
            )
        elif campaign.get("active") is False:
            report.problems.append(
                Problem(
                    f"smart campaign {campaign_id} (segments.{key}) is not active: requests would do nothing",
                    "activate the smart campaign in Marketo (its trigger: Campaign is Requested, Web Service API)",
                )
            )


# -- what the instance allows for companies (remembered per account) --------------------------------------

#: Watermarks: set while Marketo refuses the account's company writes (CRM-synced, 1018); when it was last asked.
COMPANIES_REFUSED = "marketo_companies_refused"
COMPANIES_CHECKED = "marketo_companies_checked"
#: How long an answer holds before ``map`` asks again (an instance's CRM sync is switched on or off rarely).
RECHECK_COMPANIES_AFTER = timedelta(days=7)


def companies_refused(db: StateDB, account: str) -> bool:
    """Whether Marketo refused this account's company writes when last asked or tried."""
    return db.watermarks.get(account, COMPANIES_REFUSED) is not None


def remember_companies(db: StateDB, account: str, *, refused: bool, at: datetime) -> None:
    """Record what Marketo answered to company writes (a probe, or the load's own company batches)."""
    if refused:
        db.watermarks.set(account, COMPANIES_REFUSED, at)
    else:
        db.watermarks.delete(account, COMPANIES_REFUSED)
    db.watermarks.set(account, COMPANIES_CHECKED, at)


def ensure_companies_known(db: StateDB, account: AccountConfig, hook: Callable[[], MarketoHook], now: datetime) -> None:
    """In ``companies: auto``, ask Marketo (one call) whether companies are writable, unless known and recent.

    ``map`` calls this before planning, so that even the first run on a CRM-synced instance puts the company
    facts on lead fields instead of planning company writes Marketo would refuse.
    """
    if account.marketo.companies is not CompaniesMode.AUTO:
        return
    checked = db.watermarks.get(account.name, COMPANIES_CHECKED)
    if checked is not None and now - checked < RECHECK_COMPANIES_AFTER:
        return
    remember_companies(db, account.name, refused=not hook().companies_writable(), at=now)

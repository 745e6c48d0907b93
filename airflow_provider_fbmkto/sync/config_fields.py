"""Parsing the fields of one account (machinery of :mod:`airflow_provider_fbmkto.sync.config`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from airflow_provider_fbmkto.sync.config_alerts import ALERTS_SCHEMA, parse_alerts
from airflow_provider_fbmkto.sync.config_checks import AccountFacts
from airflow_provider_fbmkto.sync.config_marketo import MARKETO_SCHEMA, parse_marketo
from airflow_provider_fbmkto.sync.config_reader import MISSING, Path_, Reader, kind, unknown_keys
from airflow_provider_fbmkto.sync.config_schema import (
    DEFAULT_BULK_THRESHOLD,
    AccountConfig,
    MatchingConfig,
    ReconcileConfig,
)
from airflow_provider_fbmkto.sync.cron import schedule_problem
from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS, Rule, company_key_for_rule
from airflow_provider_fbmkto.sync.plan import ActivityTypeNames, Segments

__all__ = ["SCHEMA", "parse_account"]

_RULE_KEYS = ("client_id", "email", "domain", "company", "shared")
SCHEMA: Final[dict[str, object]] = {
    "name": None,
    "freshbooks_conn_id": None,
    "marketo_conn_id": None,
    "schedule": None,
    "start_date": None,
    "catchup": None,
    "timezone": None,
    "matching": {"rules": [dict.fromkeys(_RULE_KEYS)], "free_mail_domains": None},
    "segments": dict.fromkeys(("paid_list_id", "overdue_list_id", "on_overdue_campaign_id", "on_paid_campaign_id")),
    "activity_types": dict.fromkeys(("invoice_sent", "payment_received", "invoice_overdue")),
    "staging_url": None,
    "webhooks": None,
    "webhooks_retention_days": None,
    "reconcile": dict.fromkeys(("fix_marketo", "bulk_threshold")),
    "marketo": MARKETO_SCHEMA,
    "alerts": ALERTS_SCHEMA,
    "pool": None,
    "retries": None,
    "max_active_runs": None,
    "retry_skipped": None,
    "daily_budget_share": None,
}
_NAME = re.compile(r"^[a-z0-9_]+$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_NAME = 250 - len("fbmkto_sync__")


def _name(r: Reader) -> str | None:
    name = r.text(("name",), required="acme")
    if name is None:
        return None
    if not _NAME.match(name) or len(name) > _MAX_NAME:
        fixed = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "acme"
        r.error(("name",), f"{name!r} must be lower-case letters, digits and '_' (it is in the DAG id); e.g. {fixed!r}")
        return None
    return name


def _conn_id(r: Reader, key: str, example: str) -> str | None:
    value = r.text((key,), required=example)
    if value is not None and not _CONN_ID.match(value):
        r.error((key,), f"{value!r} is not a connection id (letters, digits, '_', '.', '-'); e.g. {example!r}")
        return None
    return value


def _schedule(r: Reader) -> str | None:
    value = r.text(("schedule",), required='"@daily"')
    if value is None:
        return None
    problem = schedule_problem(value)
    if problem is not None:
        r.error(("schedule",), problem)
        return None
    return value


def _start_date(r: Reader) -> date | None:
    value = r.required(("start_date",), '"2025-01-01"')
    if value is MISSING:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    r.error(("start_date",), f'{value!r} is not a date; write it as "YYYY-MM-DD", e.g. "2025-01-01"')
    return None


def _timezone(r: Reader) -> str:
    value = r.text(("timezone",))
    if value is None:
        return "America/New_York"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(value, sorted(available_timezones()), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "use an IANA name such as 'America/New_York'"
        r.error(("timezone",), f"unknown time zone {value!r}; {hint}")
        return "America/New_York"
    return value


def _domain_problem(domain: str) -> str | None:
    if "://" in domain or "/" in domain or "@" in domain:
        bare = domain.split("://")[-1].split("/")[0].split("@")[-1]
        return f"{domain!r} is not a bare domain; write e.g. {bare!r}"
    if not _DOMAIN.match(domain):
        return f"{domain!r} is not a domain name like 'bigco.io'"
    return None


def _free_mail(r: Reader) -> frozenset[str]:
    path: Path_ = ("matching", "free_mail_domains")
    value = r.get(path)
    if value is MISSING:
        return frozenset()
    if not isinstance(value, list):
        r.error(path, f"must be a list of domains, got {kind(value)}")
        return frozenset()
    out: set[str] = set()
    for i, item in enumerate(value):
        domain = item.strip().lower() if isinstance(item, str) else None
        problem = "must be text" if domain is None else _domain_problem(domain)
        if problem is not None or domain is None:
            r.error((*path, i), problem or "must be text")
        else:
            out.add(domain)
    return frozenset(out)


def _rule(r: Reader, path: Path_, raw: object, free_mail: frozenset[str]) -> Rule | None:
    if not isinstance(raw, Mapping):
        r.error(path, f"must be a mapping like {{domain: bigco.io, company: BigCo}}, got {kind(raw)}")
        return None
    before = len(r.errors)
    selectors = [k for k in ("client_id", "email", "domain") if raw.get(k) is not None]
    if len(selectors) != 1:
        given = " and ".join(repr(s) for s in selectors) if selectors else "none of them"
        r.error(
            path, f"has {'both ' if len(selectors) == 2 else ''}{given}; give exactly one of client_id, email, domain"
        )
    company = r.text((*path, "company"), required="BigCo Holdings")
    if company is not None and not company_key_for_rule(company):
        r.error((*path, "company"), f"{company!r} has no letters or digits; give the company's name")
    shared = r.flag((*path, "shared"), False)
    client_id = r.integer((*path, "client_id"), None, 1) if "client_id" in selectors else None
    email = domain = None
    if "email" in selectors:
        email = r.text((*path, "email"))
        if email is not None and not _EMAIL.match(email):
            r.error((*path, "email"), f"{email!r} is not an e-mail address")
    if "domain" in selectors:
        domain = r.text((*path, "domain"))
        domain = domain.lower().rstrip(".") if domain is not None else None
        problem = _domain_problem(domain) if domain is not None else None
        if problem is not None:
            r.error((*path, "domain"), problem)
        elif domain in free_mail:
            r.error(
                (*path, "domain"),
                f"{domain!r} is a free-mail domain: it would put unrelated people in one company; "
                f"use 'email' or 'client_id' rules for them",
            )
    if len(r.errors) != before or company is None:
        return None
    return Rule(company=company, client_id=client_id, email=email, domain=domain, shared=shared)


def _matching(r: Reader) -> MatchingConfig:
    r.section(("matching",))
    extra = _free_mail(r)
    path: Path_ = ("matching", "rules")
    raw_rules = r.get(path)
    if raw_rules is MISSING:
        return MatchingConfig((), extra)
    if not isinstance(raw_rules, list):
        r.error(path, f"must be a list of rules (lines starting with '-'), got {kind(raw_rules)}")
        return MatchingConfig((), extra)
    where: dict[tuple[str, object], int] = {}
    names: dict[str, tuple[int, str]] = {}
    for i, raw in enumerate(raw_rules):
        rule = _rule(r, (*path, i), raw, FREE_MAIL_DOMAINS | extra)
        if rule is None:
            continue
        selector = (rule.selector, getattr(rule, rule.selector))
        if selector in where:
            r.error(
                (*path, i),
                f"never used: rules[{where[selector]}] already matches {selector[0]} {selector[1]!r} "
                f"(first match wins); remove one",
            )
            continue
        first = names.setdefault(rule.key, (i, rule.company))
        if first[1] != rule.company:
            r.error(
                (*path, i, "company"),
                f"{rule.company!r} and rules[{first[0]}]'s {first[1]!r} are the same company "
                f"(key {rule.key!r}); spell it the same way in both",
            )
            continue
        where[selector] = i
        r.rules.append((i, rule))
    return MatchingConfig(tuple(rule for _, rule in r.rules), extra)


def _segments(r: Reader) -> Segments:
    r.section(("segments",))
    ids = {
        key: r.integer(("segments", key), None, 1)
        for key in ("paid_list_id", "overdue_list_id", "on_overdue_campaign_id", "on_paid_campaign_id")
    }
    if ids["paid_list_id"] is not None and ids["paid_list_id"] == ids["overdue_list_id"]:
        r.error(("segments", "overdue_list_id"), "is the same list as paid_list_id; a lead is in at most one")
    return Segments(**ids)


def _activity_types(r: Reader) -> ActivityTypeNames:
    r.section(("activity_types",))
    defaults = ActivityTypeNames()
    names: dict[str, str] = {}
    for key in ("invoice_sent", "payment_received", "invoice_overdue"):
        value = r.text(("activity_types", key)) or getattr(defaults, key)
        if not _API_NAME.match(value):
            r.error(
                ("activity_types", key), f"{value!r} is not a Marketo apiName (letters, digits, '_'; a letter first)"
            )
        elif value in names.values():
            r.error(("activity_types", key), f"{value!r} is already used for another activity type; use distinct names")
        names[key] = value
    return ActivityTypeNames(**names)


def _staging_url(r: Reader) -> str | None:
    value = r.text(("staging_url",))
    if value is not None and "://" not in value and not value.startswith("/"):
        r.error(("staging_url",), f"{value!r} is relative; use an absolute path or a URL such as 's3://bucket/fbmkto'")
        return None
    return value


def _reconcile(r: Reader) -> ReconcileConfig:
    r.section(("reconcile",))
    return ReconcileConfig(
        fix_marketo=r.flag(("reconcile", "fix_marketo"), False),
        bulk_threshold=r.integer(("reconcile", "bulk_threshold"), DEFAULT_BULK_THRESHOLD, 1) or DEFAULT_BULK_THRESHOLD,
    )


def _budget_share(r: Reader) -> float | None:
    value = r.get(("daily_budget_share",))
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        r.error(
            ("daily_budget_share",),
            f"must be a fraction above 0 and at most 1 of the Marketo instance's usable daily budget "
            f"(e.g. 0.5 for half), got {kind(value)} {value!r}",
        )
        return None
    return float(value)


def parse_account(r: Reader) -> tuple[AccountConfig | None, AccountFacts]:
    """Parse one merged account; ``(None, facts)`` when it has problems (they are in ``r.errors``)."""
    for path, problem in unknown_keys(r.own, SCHEMA, ()):
        r.error(path, problem)
    parts: dict[str, Callable[[], object]] = {
        "name": lambda: _name(r),
        "freshbooks_conn_id": lambda: _conn_id(r, "freshbooks_conn_id", "freshbooks_acme"),
        "marketo_conn_id": lambda: _conn_id(r, "marketo_conn_id", "marketo_default"),
        "schedule": lambda: _schedule(r),
        "start_date": lambda: _start_date(r),
        "catchup": lambda: r.flag(("catchup",), False),
        "timezone": lambda: _timezone(r),
        "matching": lambda: _matching(r),
        "segments": lambda: _segments(r),
        "activity_types": lambda: _activity_types(r),
        "staging_url": lambda: _staging_url(r),
        "webhooks": lambda: r.flag(("webhooks",), False),
        "webhooks_retention_days": lambda: r.integer(("webhooks_retention_days",), 30, 1),
        "reconcile": lambda: _reconcile(r),
        "marketo": lambda: parse_marketo(r),
        "alerts": lambda: parse_alerts(r),
        "pool": lambda: r.text(("pool",)),
        "retries": lambda: r.integer(("retries",), 3, 0),
        "max_active_runs": lambda: r.integer(("max_active_runs",), 1, 1),
        "retry_skipped": lambda: r.integer(("retry_skipped",), 5, 0),
        "daily_budget_share": lambda: _budget_share(r),
    }
    values = {key: read() for key, read in parts.items()}
    name, conn = values["name"], values["freshbooks_conn_id"]
    facts = AccountFacts(
        r.label, name if isinstance(name, str) else None, conn if isinstance(conn, str) else None, r.rules
    )
    if r.errors:
        return None, facts
    return AccountConfig(**values), facts  # type: ignore[arg-type]

"""``fbmkto docs config-reference``: the account config reference, generated from the config schema.

The keys come from the parser's schema (:data:`airflow_provider_fbmkto.sync.config_fields.SCHEMA`: exactly the
keys the loader accepts), types and defaults from the frozen dataclasses the loader builds
(:class:`~airflow_provider_fbmkto.sync.config_schema.AccountConfig` and its parts), descriptions from those
dataclasses' ``:param …:`` docs, completed by :data:`EXTRA_DOCS` for the few small dataclasses without them.
A schema key without a description is an error, so the reference cannot silently fall behind the code;
``--check`` fails when the committed file differs from what the code generates.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from airflow_provider_fbmkto.exceptions import ConfigError

DEFAULT_OUTPUT = "docs/config-reference.md"

#: Descriptions of fields whose dataclass has no ``:param:`` doc (key path -> text).
EXTRA_DOCS = {
    "matching.rules[].client_id": (
        "FreshBooks client id this rule matches (give exactly one of client_id, email, domain)."
    ),
    "matching.rules[].email": "A client's e-mail address (case-insensitive).",
    "matching.rules[].domain": (
        "An e-mail domain such as `bigco.io` (a bare domain; free-mail domains such as gmail.com are refused)."
    ),
    "matching.rules[].company": (
        "The Marketo company the matched clients belong to; its key is the name lower-cased with each run of "
        "non-alphanumerics turned into `-` (`BigCo Holdings` → `fbmkto:bigco-holdings`)."
    ),
    "matching.rules[].shared": (
        "Allow another account to write the same company (every rule naming it, in both accounts, must say so)."
    ),
    "matching.free_mail_domains": (
        "More free-mail domains that never match by domain (their clients match only by `email`/`client_id` "
        "rules), added to the built-in list: {free_mail}."
    ),
    "segments.paid_list_id": "Marketo static list id that holds the leads whose `fbPaymentStatus` is `paid`.",
    "segments.overdue_list_id": "Marketo static list id that holds the leads whose `fbPaymentStatus` is `overdue`.",
    "segments.on_overdue_campaign_id": "Smart campaign requested for leads entering the overdue segment.",
    "segments.on_paid_campaign_id": "Smart campaign requested for leads entering the paid segment.",
    "activity_types.invoice_sent": "apiName of the *Invoice Sent* custom activity type.",
    "activity_types.payment_received": "apiName of the *Payment Received* custom activity type.",
    "activity_types.invoice_overdue": "apiName of the *Invoice Overdue* custom activity type.",
    "marketo.lead_fields": (
        "Lead fact → API name of the customer's lead field, or `null` to never write it; facts not named keep "
        "their default: {lead_fields}. The `company_*` facts are written onto leads where companies are not "
        "(`companies: lead_fields`, or `auto` on a CRM-synced instance). `fbmkto setup-marketo` creates the "
        "custom ones that are missing."
    ),
    "marketo.company_fields": (
        "Company fact → API name of the customer's company field, or `null`; defaults: {company_fields}. "
        "Company fields are created by an admin in Marketo (the API cannot); the preflight checks they exist."
    ),
    "marketo.leads.create": (
        "`false` = update only (Marketo `updateOnly`): people already in Marketo get fields, activities and list "
        "membership; the others wait in the ledger as *no lead in Marketo* and go through on a later run once the "
        "person exists. For instances licensed by database size."
    ),
    "marketo.leads.partition": "Lead partition (`partitionName`) new leads are created in.",
    "marketo.leads.shared": (
        "`true` = this account shares its people with the other accounts writing the same Marketo: a person another "
        "account wrote first (its owner) is updated by this one too, when the owner says `shared: true` as well; "
        "only the owner ever creates it. Otherwise this account's writes for that person (lead, activities, list "
        "membership) are held as *owned by account …*."
    ),
    "marketo.companies": (
        "`auto`: write companies, and where Marketo refuses them (CRM-synced, `1018`) put the company facts on "
        "lead fields; `write`: companies only; `lead_fields`: never write companies, facts on lead fields; `off`."
    ),
}

#: Defaults the dataclasses express as ``None`` but the sync fills in (key path -> shown default).
EFFECTIVE_DEFAULTS = {
    "staging_url": "`$AIRFLOW_HOME/fbmkto/staging`",
    "pool": "none (Airflow's default pool)",
    "marketo.lead_fields": "the provider's names",
    "marketo.company_fields": "the provider's names",
    "marketo.companies": "`auto`",
    "alerts.notify[].kwargs": "none",
}

EXAMPLE = """\
defaults:                         # merged into every account; the account's own values win
  marketo_conn_id: marketo_default
  schedule: "@daily"
  timezone: America/New_York
accounts:
  - name: acme                    # DAG fbmkto_sync__acme
    freshbooks_conn_id: freshbooks_acme
    start_date: "2025-01-01"
    matching:
      rules:                      # first match wins; then the client's e-mail domain
        - {domain: bigco.io, company: BigCo Holdings}
        - {email: cfo@smallco.com, company: SmallCo}
        - {client_id: 42, company: Forty Two Ltd}
    segments: {paid_list_id: 1001, overdue_list_id: 1002}
    reconcile: {fix_marketo: false}
    pool: fbmkto_marketo
"""


def _param_docs(cls: type) -> dict[str, str]:
    """``:param name: text`` entries of a class docstring (continuation lines joined)."""
    docs: dict[str, str] = {}
    current: str | None = None
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        found = re.match(r":param (\w+):\s*(.*)", stripped)
        if found:
            current = found.group(1)
            docs[current] = found.group(2)
        elif current and stripped and not stripped.startswith(":"):
            docs[current] += " " + stripped
        else:
            current = None
    return {k: _markdown(v) for k, v in docs.items()}


def _markdown(text: str) -> str:
    """reST inline markup of docstrings as Markdown: ``x`` -> `x`, :role:`~a.b.c` -> `c`."""
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text).strip()


def _type_name(annotation: str) -> str:
    plain = annotation.replace(" | None", "").strip()
    names = {
        "str": "text",
        "int": "integer",
        "float": "number",
        "bool": "`true` / `false`",
        "date": 'date text `"YYYY-MM-DD"`',
        "tuple[Rule, ...]": "list of rules",
        "frozenset[str]": "list of domains",
        "CompaniesMode": "`auto` / `write` / `lead_fields` / `off`",
        "tuple[NotifierSpec, ...]": "list of notifiers",
    }
    return names.get(plain, "mapping")


def _default(f: dataclasses.Field[Any], path: str) -> str:
    if path in EFFECTIVE_DEFAULTS:
        return EFFECTIVE_DEFAULTS[path]
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "**required**"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (tuple, frozenset)) and not value:
        return "empty"
    if dataclasses.is_dataclass(value):
        return "see below"
    return f"`{value}`"


def _classes() -> dict[str, type]:
    """Schema path prefix -> the dataclass holding those keys."""
    from airflow_provider_fbmkto.sync.config_schema import (
        AccountConfig,
        ActivityTypesConfig,
        AlertsConfig,
        MatchingConfig,
        NotifierSpec,
        ReconcileConfig,
        SegmentsConfig,
    )
    from airflow_provider_fbmkto.sync.marketo_fit import LeadPolicy, MarketoFit
    from airflow_provider_fbmkto.sync.matching import Rule

    return {
        "": AccountConfig,
        "matching": MatchingConfig,
        "matching.rules[]": Rule,
        "segments": SegmentsConfig,
        "activity_types": ActivityTypesConfig,
        "reconcile": ReconcileConfig,
        "marketo": MarketoFit,
        "marketo.leads": LeadPolicy,
        "alerts": AlertsConfig,
        "alerts.notify[]": NotifierSpec,
    }


def reference_rows() -> list[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` for every key the config loader accepts, in schema order.

    :raises ConfigError: a schema key has no matching dataclass field or no description.
    """
    from airflow_provider_fbmkto.sync.config_fields import SCHEMA

    classes = _classes()
    rows: list[tuple[str, str, str, str]] = []

    def walk(schema: dict[str, object], prefix: str) -> None:
        cls = classes.get(prefix)
        if cls is None:
            raise ConfigError(f"config reference: no dataclass documents the keys under {prefix!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        docs = _param_docs(cls)
        for key, sub in schema.items():
            path = f"{prefix}.{key}" if prefix else key
            f = fields.get(key)
            if f is None:
                raise ConfigError(f"config reference: schema key {path!r} is not a field of {cls.__name__}")
            text = EXTRA_DOCS.get(path, "").format(free_mail=_free_mail_sample(), **_field_defaults()) or docs.get(key)
            if not text:
                raise ConfigError(f"config reference: {path!r} has no description; add a :param {key}: doc")
            kind = _type_name(str(f.type))
            rows.append((path, kind, _default(f, path), text))
            if isinstance(sub, dict):
                walk(sub, path)
            elif isinstance(sub, list) and sub and isinstance(sub[0], dict):
                walk(sub[0], f"{path}[]")

    walk(SCHEMA, "")
    return rows


def _field_defaults() -> dict[str, str]:
    from airflow_provider_fbmkto.sync.marketo_fit import DEFAULT_COMPANY_FIELDS, DEFAULT_LEAD_FIELDS

    return {
        "lead_fields": ", ".join(f"`{k}` → `{v}`" for k, v in DEFAULT_LEAD_FIELDS.items()),
        "company_fields": ", ".join(f"`{k}` → `{v}`" for k, v in DEFAULT_COMPANY_FIELDS.items()),
    }


def _free_mail_sample() -> str:
    from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS

    shown = sorted(FREE_MAIL_DOMAINS)
    return f"{', '.join(shown[:6])}, … ({len(shown)} domains)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_reference() -> str:
    """The whole Markdown page (deterministic: the same code gives the same bytes)."""
    from airflow_provider_fbmkto.sync.config_schema import CONFIG_ENV, DEFAULT_CONFIG_NAME

    lines = [
        "# Account config reference",
        "",
        "<!-- Generated by `fbmkto docs config-reference --output docs/config-reference.md` from the config",
        "     schema (airflow_provider_fbmkto/sync/config_fields.py and config_schema.py). Do not edit by hand. -->",
        "",
        f"The accounts file is `{DEFAULT_CONFIG_NAME}` in the DAGs folder, beside the DAG file; the environment",
        f"variable `{CONFIG_ENV}` overrides its path. It holds `accounts:`, a list with one entry per FreshBooks",
        "account (each becomes the DAG `fbmkto_sync__<name>`), and optionally `defaults:`, a mapping merged into",
        "every account: nested mappings merge key by key and the account's own values win; lists are replaced,",
        "not joined. `name` cannot be a default.",
        "",
        "Unknown keys are errors (with a did-you-mean), and so is a key given twice in one mapping. A problem in",
        "one account disables only that account (the DAG file shows it as an import error naming the file, the",
        "account, the field and the fix); problems of the file itself (YAML syntax, no `accounts:`) disable all.",
        "Check a file without Airflow with `fbmkto check --config PATH`.",
        "",
        "Across accounts: names must be unique; two accounts may not share a `freshbooks_conn_id`; two accounts",
        "whose rules name the same company are refused unless every rule naming it, in both, says `shared: true`.",
        "",
        "## Example",
        "",
        "```yaml",
        EXAMPLE.rstrip(),
        "```",
        "",
        "## Keys",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{k}` | {_cell(t)} | {_cell(d)} | {_cell(doc)} |" for k, t, d, doc in reference_rows()]
    lines += [
        "",
        "`matching.rules[]`: each rule has exactly one of `client_id`, `email`, `domain`, and a `company`. Rules are",
        "tried in order before the client's e-mail domain; the first match wins. A rule that can never match",
        "(its selector repeats an earlier rule's) is an error.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def register(sub: Any) -> None:
    docs = sub.add_parser("docs", help="generate documentation from the code (config reference)")
    dsub = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    ref = dsub.add_parser("config-reference", help="the account config reference (Markdown) from the schema")
    ref.add_argument("--output", help=f"write to this file (e.g. {DEFAULT_OUTPUT}); default: print it")
    ref.add_argument("--check", action="store_true", help="exit 1 when --output differs from the generated text")
    ref.set_defaults(func=run_config_reference)


def run_config_reference(args: argparse.Namespace) -> int:
    text = render_reference()
    if not args.output:
        if args.check:
            print("fbmkto docs config-reference: --check needs --output FILE", file=sys.stderr)
            return 2
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            print(
                f"{path} is out of date with the config schema; regenerate it: "
                f"fbmkto docs config-reference --output {path}",
                file=sys.stderr,
            )
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0

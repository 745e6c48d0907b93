"""Parsing ``marketo:`` of one account (machinery of :mod:`airflow_provider_fbmkto.sync.config`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from airflow_provider_fbmkto.sync.config_reader import MISSING, Path_, Reader, kind, lookup, suggest
from airflow_provider_fbmkto.sync.marketo_fit import (
    DEFAULT_COMPANY_FIELDS,
    DEFAULT_LEAD_FIELDS,
    CompaniesMode,
    LeadPolicy,
    MarketoFit,
)

__all__ = ["MARKETO_SCHEMA", "parse_marketo"]

#: The keys under ``marketo:`` (``lead_fields`` / ``company_fields`` keys are checked here, against the facts).
MARKETO_SCHEMA: Final[dict[str, object]] = {
    "lead_fields": None,
    "company_fields": None,
    "leads": dict.fromkeys(("create", "partition", "shared")),
    "companies": None,
}
#: Marketo REST API names: a letter first, then letters, digits and '_'.
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MODES = tuple(m.value for m in CompaniesMode)


def _field_map(r: Reader, key: str, defaults: Mapping[str, str]) -> tuple[tuple[str, str | None], ...]:
    path: Path_ = ("marketo", key)
    raw = r.section(path)
    out: list[tuple[str, str | None]] = []
    for fact in raw:
        if not isinstance(fact, str) or fact not in defaults:
            r.error((*path, str(fact)), f"unknown fact; {suggest(str(fact), list(defaults))}")
            continue
        value = lookup(r.merged, (*path, fact))
        if value is None:  # an explicit null: never write this fact
            out.append((fact, None))
        elif not isinstance(value, str) or not _API_NAME.match(value.strip()):
            r.error(
                (*path, fact),
                f"{value!r} is not a Marketo API name (letters, digits, '_'; a letter first), or null to never "
                f"write it; default {defaults[fact]!r}",
            )
        else:
            out.append((fact, value.strip()))
    names = {fact: name for fact, name in ((f, dict(out).get(f, d)) for f, d in defaults.items()) if name}
    seen: dict[str, str] = {}
    for fact, name in names.items():
        other = seen.setdefault(name.lower(), fact)
        if other != fact:
            r.error((*path, fact), f"{name!r} is also the field of {other!r}; give each fact its own field (or null)")
    return tuple(out)


def _leads(r: Reader) -> LeadPolicy:
    r.section(("marketo", "leads"))
    return LeadPolicy(
        create=r.flag(("marketo", "leads", "create"), True),
        partition=r.text(("marketo", "leads", "partition")),
        shared=r.flag(("marketo", "leads", "shared"), False),
    )


def _companies(r: Reader) -> CompaniesMode:
    value = r.get(("marketo", "companies"))
    if value is MISSING:
        return CompaniesMode.AUTO
    if value is False:  # YAML reads an unquoted `off` as false
        return CompaniesMode.OFF
    if not isinstance(value, str) or value.strip().lower() not in _MODES:
        r.error(("marketo", "companies"), f"must be one of {', '.join(_MODES)}, got {kind(value)} {value!r}")
        return CompaniesMode.AUTO
    return CompaniesMode(value.strip().lower())


def parse_marketo(r: Reader) -> MarketoFit:
    """``marketo:`` of the merged account; problems go to ``r.errors`` (with the defaults' origin when they apply)."""
    r.section(("marketo",))
    return MarketoFit(
        lead_fields=_field_map(r, "lead_fields", DEFAULT_LEAD_FIELDS),
        company_fields=_field_map(r, "company_fields", DEFAULT_COMPANY_FIELDS),
        leads=_leads(r),
        companies=_companies(r),
    )

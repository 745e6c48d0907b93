"""Reconciliation: FreshBooks clients compared with Marketo leads; corrections for ``fix_marketo``.

FreshBooks is the source of truth for names and e-mails. Leads are compared by e-mail, case-insensitively:

* ``name_differs`` — ``firstName`` / ``lastName`` differ from the client's ``fname`` / ``lname`` (compared
  after trimming, case-sensitively, so ``"ann"`` vs ``"Ann"`` is a difference). An empty FreshBooks name is
  no claim and is never reported (a correction would blank Marketo's value);
* ``company_differs`` — for a client matched to a company, the lead's ``company`` differs from that
  company's display name (whitespace runs collapsed); the fix re-links the lead (``externalCompanyId``);
* ``only_in_freshbooks`` — a live client with an e-mail and no lead among those read;
* ``only_in_marketo`` — a lead whose e-mail no client has; pass only leads that belong to this account's
  scope (e.g. read by the clients' e-mails, or carrying ``fbPaymentStatus``), or this lists every lead;
* ``deleted_in_freshbooks`` — a lead whose only clients are deleted (informational: leads are never deleted).

Companies are compared by name (:func:`compare_company_names`): each company the account writes (by its
``externalCompanyId``) against the Marketo company of that id -- ``company_name_differs`` when Marketo's
``company`` differs (whitespace runs collapsed), ``company_not_in_marketo`` when Marketo has no such company.

Several clients with one e-mail are represented by the lowest client id (as in the lead mapping); several
Marketo leads with one e-mail (duplicates) are each compared. Clients without an e-mail cannot be compared
and are left out (the mapping reports them as skipped).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from airflow_provider_fbmkto.sync.matching import CompanyMatch
from airflow_provider_fbmkto.sync.records import Client

__all__ = [
    "LEAD_FIELDS",
    "CompanyMismatch",
    "Mismatch",
    "MismatchKind",
    "company_corrections",
    "compare",
    "compare_company_names",
    "corrections",
]

LEAD_FIELDS = ("id", "email", "firstName", "lastName", "company")
"""The Marketo lead fields :func:`compare` reads (ask Marketo for these)."""


class MismatchKind(str, enum.Enum):
    NAME_DIFFERS = "name_differs"
    COMPANY_DIFFERS = "company_differs"
    ONLY_IN_FRESHBOOKS = "only_in_freshbooks"
    ONLY_IN_MARKETO = "only_in_marketo"
    DELETED_IN_FRESHBOOKS = "deleted_in_freshbooks"
    COMPANY_NAME_DIFFERS = "company_name_differs"
    COMPANY_NOT_IN_MARKETO = "company_not_in_marketo"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One difference between FreshBooks and Marketo.

    :param kind: what differs.
    :param email: the e-mail compared on (lower-cased).
    :param client_id: the FreshBooks client, when there is one.
    :param lead_id: the Marketo lead id, when there is a lead (and Marketo gave its id).
    :param field: the Marketo field that differs (``firstName``, ``lastName``, ``company``), else ``None``.
    :param freshbooks_value: what FreshBooks says (or the expected company name).
    :param marketo_value: what Marketo has.
    :param fix: ``(field, value)`` to write to the lead to correct it; ``None`` when nothing can be written.
    """

    kind: MismatchKind
    email: str
    client_id: int | None
    lead_id: int | None
    field: str | None = None
    freshbooks_value: str | None = None
    marketo_value: str | None = None
    fix: tuple[str, str] | None = None


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _lead_id(lead: Mapping[str, object]) -> int | None:
    value = lead.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _compare_one(
    client: Client, email: str, lead: Mapping[str, object], company: CompanyMatch | None
) -> list[Mismatch]:
    lead_id = _lead_id(lead)
    out = []
    for field, truth in (("firstName", client.fname.strip()), ("lastName", client.lname.strip())):
        if field in lead and truth and _text(lead.get(field)) != truth:
            out.append(
                Mismatch(
                    MismatchKind.NAME_DIFFERS, email, client.id, lead_id, field, truth, _text(lead.get(field)),
                    (field, truth),
                )
            )  # fmt: skip
    if company is not None and "company" in lead:
        have = " ".join(_text(lead.get("company")).split())
        want = " ".join(company.name.split())
        if have != want:
            out.append(
                Mismatch(
                    MismatchKind.COMPANY_DIFFERS, email, client.id, lead_id, "company", want, have,
                    ("externalCompanyId", company.external_id),
                )
            )  # fmt: skip
    return out


def compare(
    fb_clients: Iterable[Client],
    marketo_leads: Iterable[Mapping[str, object]],
    *,
    companies: Mapping[int, CompanyMatch] | None = None,
) -> list[Mismatch]:
    """Compare clients with leads (see the module notes); sorted by e-mail, kind, field.

    :param fb_clients: the account's clients (deleted ones included, to recognise their leads).
    :param marketo_leads: leads as Marketo returns them (mappings with :data:`LEAD_FIELDS`; a field absent
        from a lead is not compared).
    :param companies: client id → company match; enables ``company_differs``.
    """
    matches = companies or {}
    live: dict[str, Client] = {}
    deleted: dict[str, Client] = {}
    for client in sorted(fb_clients, key=lambda c: c.id):
        email = client.email.strip().lower()
        if email:
            (deleted if client.is_deleted else live).setdefault(email, client)
    leads: dict[str, list[Mapping[str, object]]] = defaultdict(list)
    for lead in marketo_leads:
        email = _text(lead.get("email")).lower()
        if email:
            leads[email].append(lead)

    out: list[Mismatch] = []
    for email, client in live.items():
        if email not in leads:
            out.append(Mismatch(MismatchKind.ONLY_IN_FRESHBOOKS, email, client.id, None))
            continue
        for lead in leads[email]:
            out += _compare_one(client, email, lead, matches.get(client.id))
    for email, group in leads.items():
        if email in live:
            continue
        gone = deleted.get(email)
        kind = MismatchKind.DELETED_IN_FRESHBOOKS if gone is not None else MismatchKind.ONLY_IN_MARKETO
        out += [Mismatch(kind, email, gone.id if gone else None, _lead_id(lead)) for lead in group]
    return sorted(out, key=lambda m: (m.email, m.kind.value, m.field or "", m.lead_id or 0))


def corrections(mismatches: Iterable[Mismatch]) -> list[dict[str, object]]:
    """Lead updates that make Marketo agree with FreshBooks, one dict per lead, sorted.

    Entries carry ``id`` when the lead id is known (send them with ``lookupField: id``), else ``email``
    (``lookupField: email``); send the two groups separately. Mismatches without a ``fix`` give nothing.
    """
    merged: dict[tuple[str, object], dict[str, object]] = {}
    for m in mismatches:
        if m.fix is None:
            continue
        ident: tuple[str, object] = ("id", m.lead_id) if m.lead_id is not None else ("email", m.email)
        entry = merged.setdefault(ident, {ident[0]: ident[1]})
        entry[m.fix[0]] = m.fix[1]
    return [merged[k] for k in sorted(merged, key=lambda k: (k[0], k[1] if isinstance(k[1], int) else 0, str(k[1])))]


@dataclass(frozen=True, slots=True)
class CompanyMismatch:
    """A company the account writes whose Marketo record differs (or is missing).

    :param kind: ``company_name_differs`` or ``company_not_in_marketo``.
    :param external_id: the company's ``externalCompanyId``.
    :param freshbooks_value: the name FreshBooks gives it.
    :param marketo_value: Marketo's ``company`` (``None`` when Marketo has no such company).
    """

    kind: MismatchKind
    external_id: str
    freshbooks_value: str
    marketo_value: str | None = None


def compare_company_names(
    expected: Mapping[str, str], marketo_companies: Iterable[Mapping[str, object]]
) -> list[CompanyMismatch]:
    """Compare ``{externalCompanyId: name}`` with Marketo's companies of those ids; sorted by id.

    Companies Marketo returns whose id is not in ``expected`` are ignored (another account's, or not asked).
    """
    found: dict[str, str] = {}
    for company in marketo_companies:
        ext = _text(company.get("externalCompanyId"))
        if ext in expected:
            found.setdefault(ext, " ".join(_text(company.get("company")).split()))
    out: list[CompanyMismatch] = []
    for ext in sorted(expected):
        want = " ".join(expected[ext].split())
        if ext not in found:
            out.append(CompanyMismatch(MismatchKind.COMPANY_NOT_IN_MARKETO, ext, want))
        elif found[ext] != want:
            out.append(CompanyMismatch(MismatchKind.COMPANY_NAME_DIFFERS, ext, want, found[ext]))
    return out


def company_corrections(mismatches: Iterable[CompanyMismatch]) -> list[dict[str, object]]:
    """Company updates (``externalCompanyId`` + ``company``) that give Marketo FreshBooks' names, sorted.

    Only differing names are corrected; a missing company is the load's to create, not reconcile's.
    """
    return [
        {"externalCompanyId": m.external_id, "company": m.freshbooks_value}
        for m in sorted(mismatches, key=lambda m: m.external_id)
        if m.kind is MismatchKind.COMPANY_NAME_DIFFERS
    ]

"""Reconciliation of FreshBooks clients with Marketo leads."""

from __future__ import annotations

from sync_factories import client

from airflow_provider_fbmkto.sync.matching import CompanyMatch
from airflow_provider_fbmkto.sync.reconcile import Mismatch, MismatchKind, compare, corrections
from airflow_provider_fbmkto.sync.records import VisState

BIGCO = CompanyMatch("bigco-holdings", "BigCo  Holdings", "bigco.io", 0)


def test_compare_and_correct() -> None:
    clients = [
        client(id=1, email="Ann@bigco.io", fname="Ann", lname="Lee"),
        client(id=2, email="bob@bigco.io", fname="Bob", lname=""),
        client(id=3, email="cy@new.io"),
        client(id=4, email="old@bigco.io", vis_state=VisState.DELETED),
        client(id=5, email=""),
    ]
    leads: list[dict[str, object]] = [
        {"id": 11, "email": "ann@BIGCO.io", "firstName": "ann", "lastName": "Lee", "company": "BigCo Holdings"},
        {"id": "12", "email": "bob@bigco.io", "firstName": "Bob", "lastName": "Builder", "company": "Other"},
        {"id": 13, "email": "old@bigco.io", "firstName": "Old"},
        {"id": 14, "email": "stranger@x.io", "firstName": "S"},
        {"id": 15, "email": "bob@bigco.io", "firstName": "Robert"},  # a Marketo duplicate, no company read
    ]
    result = compare(clients, leads, companies={1: BIGCO, 2: BIGCO})
    assert result == [
        Mismatch(MismatchKind.NAME_DIFFERS, "ann@bigco.io", 1, 11, "firstName", "Ann", "ann", ("firstName", "Ann")),
        # Bob's empty lname is no claim; his company differs and is fixed by re-linking
        Mismatch(MismatchKind.COMPANY_DIFFERS, "bob@bigco.io", 2, 12, "company", "BigCo Holdings", "Other",
                 ("externalCompanyId", "fbmkto:bigco-holdings")),
        Mismatch(MismatchKind.NAME_DIFFERS, "bob@bigco.io", 2, 15, "firstName", "Bob", "Robert", ("firstName", "Bob")),
        Mismatch(MismatchKind.ONLY_IN_FRESHBOOKS, "cy@new.io", 3, None),
        Mismatch(MismatchKind.DELETED_IN_FRESHBOOKS, "old@bigco.io", 4, 13),
        Mismatch(MismatchKind.ONLY_IN_MARKETO, "stranger@x.io", None, 14),
    ]  # fmt: skip
    assert corrections(result) == [
        {"id": 11, "firstName": "Ann"},
        {"id": 12, "externalCompanyId": "fbmkto:bigco-holdings"},
        {"id": 15, "firstName": "Bob"},
    ]


def test_corrections_merge_per_lead_and_fall_back_to_email() -> None:
    mismatches = [
        Mismatch(MismatchKind.NAME_DIFFERS, "a@x.io", 1, 9, "firstName", "A", "a", ("firstName", "A")),
        Mismatch(MismatchKind.NAME_DIFFERS, "a@x.io", 1, 9, "lastName", "B", "b", ("lastName", "B")),
        Mismatch(MismatchKind.NAME_DIFFERS, "c@x.io", 2, None, "lastName", "C", "c", ("lastName", "C")),
        Mismatch(MismatchKind.NAME_DIFFERS, "d@x.io", 3, 10, "lastName", "D", "d", ("lastName", "D")),
        Mismatch(MismatchKind.ONLY_IN_MARKETO, "s@x.io", None, 99),
    ]
    assert corrections(mismatches) == [
        {"email": "c@x.io", "lastName": "C"},
        {"id": 9, "firstName": "A", "lastName": "B"},
        {"id": 10, "lastName": "D"},
    ]


def test_equal_records_give_no_mismatch() -> None:
    clients = [client(id=1, email="a@bigco.io", fname="Ann", lname="Lee")]
    leads = [{"id": 1, "email": "A@bigco.io", "firstName": " Ann", "lastName": "Lee ", "company": "BigCo Holdings"}]
    assert compare(clients, leads, companies={1: BIGCO}) == []
    assert compare([], []) == []


def test_company_names_compared_by_external_id() -> None:
    from airflow_provider_fbmkto.sync.reconcile import company_corrections, compare_company_names

    expected = {"fbmkto:acme": "Acme  Inc", "fbmkto:bolt": "Bolt", "fbmkto:gone": "Gone Co"}
    marketo = [
        {"externalCompanyId": "fbmkto:acme", "company": "Acme Inc"},  # whitespace runs collapse: same
        {"externalCompanyId": "fbmkto:bolt", "company": "Bolt Ltd"},
        {"externalCompanyId": "fbmkto:other", "company": "Not ours"},
    ]
    found = compare_company_names(expected, marketo)
    assert [(m.kind.value, m.external_id, m.marketo_value) for m in found] == [
        ("company_name_differs", "fbmkto:bolt", "Bolt Ltd"),
        ("company_not_in_marketo", "fbmkto:gone", None),
    ]
    assert company_corrections(found) == [{"externalCompanyId": "fbmkto:bolt", "company": "Bolt"}]

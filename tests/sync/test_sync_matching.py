"""Company matching: rule precedence, domain fallback, free mail, keys, display names, conflicts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sync_factories import client

from airflow_provider_fbmkto.sync.matching import (
    FREE_MAIL_DOMAINS,
    CompanyMatch,
    Conflict,
    Rule,
    company_key_for_rule,
    email_domain,
    external_company_id,
    find_conflicts,
    match_client,
    match_clients,
)
from airflow_provider_fbmkto.sync.records import Client, VisState


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("BigCo Holdings", "bigco-holdings"),
        ("  A&B  Co. ", "a-b-co"),
        ("Forty Two Ltd", "forty-two-ltd"),
        ("foo_bar--baz", "foo-bar-baz"),
        ("3M", "3m"),
        ("Müller GmbH", "müller-gmbh"),
        ("Mu\u0308ller GmbH", "müller-gmbh"),  # decomposed ü is the same company
        ("!!!", ""),
    ],
)
def test_company_key_for_rule(name: str, key: str) -> None:
    assert company_key_for_rule(name) == key


def test_external_company_id_is_pinned() -> None:
    assert external_company_id(company_key_for_rule("BigCo Holdings")) == "fbmkto:bigco-holdings"


@given(st.text(max_size=40))
def test_company_key_is_idempotent_and_clean(name: str) -> None:
    key = company_key_for_rule(name)
    assert company_key_for_rule(key) == key
    assert not key.startswith("-")
    assert not key.endswith("-")
    assert "--" not in key
    assert "." not in key  # so it can never collide with a domain key
    assert key == key.lower()


@pytest.mark.parametrize(
    ("email", "domain"),
    [("Ann@BigCo.IO", "bigco.io"), ("a@b@eu.bigco.io.", "eu.bigco.io"), ("", None), ("nobody", None), ("@x.io", None)],
)
def test_email_domain(email: str, domain: str | None) -> None:
    assert email_domain(email) == domain


RULES = (
    Rule(company="BigCo Holdings", domain="BigCo.io"),
    Rule(company="SmallCo", email="CFO@smallco.com"),
    Rule(company="Forty Two Ltd", client_id=42),
)


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        # client 42 also has a bigco.io address: the domain rule comes first and wins
        (client(id=42, email="x@bigco.io"), CompanyMatch("bigco-holdings", "BigCo Holdings", "bigco.io", 0)),
        (client(id=42, email="x@other.org"), CompanyMatch("forty-two-ltd", "Forty Two Ltd", None, 2)),
        (client(id=7, email="cfo@SmallCo.com"), CompanyMatch("smallco", "SmallCo", None, 1)),
        (client(id=8, email="ceo@smallco.com", organization="SmallCo Inc"),
         CompanyMatch("smallco.com", "SmallCo Inc", "smallco.com", None)),
        # domain rules match exactly: a subdomain is its own company
        (client(id=9, email="x@eu.bigco.io", organization=""), CompanyMatch("eu.bigco.io", "eu.bigco.io", "eu.bigco.io",
                                                                          None)),
        (client(id=10, email="someone@gmail.com"), None),
        (client(id=11, email="someone@GMAIL.com"), None),
        (client(id=12, email=""), None),
        (client(id=42, email=""), CompanyMatch("forty-two-ltd", "Forty Two Ltd", None, 2)),
    ],
    ids=["first-rule-wins", "client-id", "email-case", "domain-fallback", "subdomain", "free-mail", "free-mail-case",
         "no-email", "client-id-without-email"],
)  # fmt: skip
def test_match_client_precedence(who: Client, expected: CompanyMatch | None) -> None:
    assert match_client(who, RULES, FREE_MAIL_DOMAINS) == expected


def test_extra_free_mail_domains() -> None:
    who = client(email="x@corp-mail.example")
    assert match_client(who, (), FREE_MAIL_DOMAINS) is not None
    assert match_client(who, (), FREE_MAIL_DOMAINS | {"corp-mail.example"}) is None


def test_free_mail_list_has_the_usual_suspects() -> None:
    for domain in ("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
                   "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com",
                   "gmx.com", "gmx.de", "mail.com", "zoho.com", "yandex.ru"):  # fmt: skip
        assert domain in FREE_MAIL_DOMAINS
    assert all(d == d.lower() and "." in d for d in FREE_MAIL_DOMAINS)


def test_match_clients_names_domain_companies_by_the_most_common_organization() -> None:
    clients = [
        client(id=1, email="a@acme.com", organization="Acme Inc"),
        client(id=2, email="b@acme.com", organization="ACME"),
        client(id=3, email="c@acme.com", organization="Acme Inc"),
        client(id=4, email="d@tie.com", organization="Zed"),
        client(id=5, email="e@tie.com", organization="Alpha"),
        client(id=6, email="f@noorg.com", organization=" "),
        client(id=7, email="g@acme.com", organization="Deleted Corp", vis_state=VisState.DELETED),
        client(id=8, email="h@acme.com", organization="Deleted Corp", vis_state=VisState.DELETED),
        client(id=9, email="i@gmail.com"),
        client(id=42, email="boss@acme.com", organization="Whatever"),
    ]
    matches = match_clients(clients, RULES, FREE_MAIL_DOMAINS)
    assert sorted(matches) == [1, 2, 3, 4, 5, 6, 42]
    assert {matches[i].name for i in (1, 2, 3)} == {"Acme Inc"}
    assert matches[4].name == matches[5].name == "Alpha"  # 1:1 tie -> alphabetical
    assert matches[6].name == "noorg.com"
    assert matches[42] == CompanyMatch("forty-two-ltd", "Forty Two Ltd", None, 2)  # a rule keeps its own name


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Rule(company="X", email="a@b.io", domain="b.io")
    with pytest.raises(ValueError, match="exactly one"):
        Rule(company="X")
    with pytest.raises(ValueError, match="no letters or digits"):
        Rule(company="--", domain="b.io")
    assert Rule(company="X", email=" A@B.IO ").email == "a@b.io"


def test_find_conflicts() -> None:
    a = [CompanyMatch("bigco.io", "BigCo", "bigco.io", None), CompanyMatch("shared-co", "Shared", None, 0)]
    b = [CompanyMatch("bigco.io", "BigCo", "bigco.io", None), CompanyMatch("shared-co", "Shared", None, 0)]
    c = ["bigco.io", "only-c"]  # bare keys, e.g. read from the ledger
    conflicts = find_conflicts({"beta": b, "acme": a, "gamma": c}, shared_keys={"shared-co"})
    assert conflicts == [Conflict("bigco.io", ("acme", "beta", "gamma"))]
    assert "fbmkto:bigco.io" in conflicts[0].message
    assert "shared: true" in conflicts[0].message
    assert find_conflicts({"acme": a}) == []


def test_domain_keys_and_rule_keys_never_collide() -> None:
    assert re.search(r"\.", company_key_for_rule("bigco.io")) is None
    assert company_key_for_rule("bigco.io") == "bigco-io"

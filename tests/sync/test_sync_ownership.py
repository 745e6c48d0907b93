"""Accounts that collide: the pure held-or-sent rule, sharing policies from the config, config-time overlaps."""

from __future__ import annotations

import pytest

from airflow_provider_fbmkto.sync.config import parse_config
from airflow_provider_fbmkto.sync.ownership import (
    COMPANY,
    LEAD,
    SharingPolicy,
    Verdict,
    overlap_warnings,
    sharing_policy,
    verdict,
)

NONE = SharingPolicy()
LEADS = SharingPolicy(leads=True)
BIGCO = SharingPolicy(companies=frozenset({"bigco"}))


def _account(name: str, rules: list[dict[str, object]], **marketo: object) -> dict[str, object]:
    return {
        "name": name,
        "freshbooks_conn_id": f"freshbooks_{name}",
        "marketo_conn_id": "marketo_default",
        "schedule": "@daily",
        "start_date": "2025-01-01",
        "matching": {"rules": rules},
        **({"marketo": marketo} if marketo else {}),
    }


def _config(*accounts: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_config({"accounts": list(accounts)}, source="fbmkto_accounts.yaml")


@pytest.mark.parametrize(
    ("kind", "key", "mine", "theirs", "expected"),
    [
        (LEAD, "ann@bigco.io", NONE, NONE, Verdict.HOLD),
        (LEAD, "ann@bigco.io", LEADS, NONE, Verdict.HOLD),
        (LEAD, "ann@bigco.io", NONE, LEADS, Verdict.HOLD),
        (LEAD, "ann@bigco.io", LEADS, LEADS, Verdict.SHARED),
        (LEAD, "ann@bigco.io", LEADS, None, Verdict.HOLD),
        (COMPANY, "bigco", BIGCO, BIGCO, Verdict.SHARED),
        (COMPANY, "bigco", BIGCO, NONE, Verdict.HOLD),
        (COMPANY, "bigco", LEADS, LEADS, Verdict.HOLD),
        (COMPANY, "bigco.io", BIGCO, BIGCO, Verdict.HOLD),
        (LEAD, "ann@bigco.io", BIGCO, BIGCO, Verdict.HOLD),
    ],
    ids=[
        "nobody-shares",
        "only-writer-shares",
        "only-owner-shares",
        "both-share-leads",
        "owner-never-declared",
        "both-share-the-company",
        "owner-does-not-share-the-company",
        "leads-shared-is-not-companies",
        "another-company-key",
        "companies-shared-is-not-leads",
    ],
)
def test_another_accounts_key_is_held_unless_both_share_it(
    kind: str, key: str, mine: SharingPolicy, theirs: SharingPolicy | None, expected: Verdict
) -> None:
    assert verdict("globex", kind, key, owner="acme", mine=mine, theirs=theirs) is expected


def test_the_owner_always_sends_its_own_keys() -> None:
    assert verdict("acme", LEAD, "ann@bigco.io", owner="acme", mine=NONE, theirs=None) is Verdict.SEND
    assert verdict("acme", COMPANY, "bigco", owner="acme", mine=NONE, theirs=NONE) is Verdict.SEND


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown owned kind 'list'"):
        LEADS.shares("list", "x")


def test_sharing_policy_comes_from_leads_shared_and_shared_rules() -> None:
    cfg = _config(
        _account(
            "acme",
            [
                {"domain": "bigco.io", "company": "BigCo", "shared": True},
                {"email": "cfo@smallco.com", "company": "SmallCo", "shared": True},
                {"client_id": 7, "company": "SmallCo"},  # one rule for SmallCo does not share it: not shared
                {"client_id": 8, "company": "Other"},
            ],
            leads={"shared": True},
        )
    )
    policy = sharing_policy(cfg.account("acme"))
    assert policy == SharingPolicy(leads=True, companies=frozenset({"bigco"}))
    assert cfg.account("acme").marketo.leads.shared is True


def test_leads_shared_defaults_to_false_and_must_be_a_flag() -> None:
    cfg = _config(_account("acme", []))
    assert sharing_policy(cfg.account("acme")) == NONE
    with pytest.raises(Exception, match=r"marketo\.leads\.shared"):
        _config(_account("acme", [], leads={"shared": "sometimes"}))


def test_overlapping_email_and_domain_rules_across_accounts_are_warned_about() -> None:
    cfg = _config(
        _account("acme", [{"email": "cfo@zeta.io", "company": "Zeta"}, {"domain": "bigco.io", "company": "BigCo"}]),
        _account("globex", [{"email": "cfo@zeta.io", "company": "Zeta Two"}, {"domain": "bigco.io", "company": "B2"}]),
        _account("initech", [{"domain": "initech.com", "company": "Initech"}]),
    )
    warnings = overlap_warnings(cfg.accounts)
    assert len(warnings) == 2
    domain, email = warnings
    assert "accounts 'acme', 'globex' all have a matching rule for domain bigco.io" in domain
    assert "set marketo.leads.shared: true in each of these accounts" in domain
    assert "different companies (b2, bigco)" in domain
    assert "for email cfo@zeta.io" in email


def test_no_overlap_warning_when_every_account_shares_its_leads() -> None:
    cfg = _config(
        _account("acme", [{"domain": "bigco.io", "company": "BigCo", "shared": True}], leads={"shared": True}),
        _account("globex", [{"domain": "bigco.io", "company": "BigCo", "shared": True}], leads={"shared": True}),
    )
    assert overlap_warnings(cfg.accounts) == []
    half = _config(
        _account("acme", [{"domain": "bigco.io", "company": "BigCo", "shared": True}], leads={"shared": True}),
        _account("globex", [{"domain": "bigco.io", "company": "BigCo", "shared": True}]),
    )
    (warning,) = overlap_warnings(half.accounts)
    assert "different companies" not in warning  # the same company, shared: only the people collide

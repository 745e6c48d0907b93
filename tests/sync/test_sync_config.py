"""Account config: the minimal file, defaults, every error naming file + account + field, conflicts."""

from __future__ import annotations

import pickle
import textwrap
from datetime import date
from pathlib import Path

import pytest

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.sync.config import (
    load_config,
    load_config_collecting,
    parse_config,
    parse_config_collecting,
)
from airflow_provider_fbmkto.sync.config_schema import AccountConfigError, ConfigProblems, config_path
from airflow_provider_fbmkto.sync.cron import schedule_problem
from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS, Rule

MINIMAL = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"            # or any cron
    start_date: "2025-01-01"
    matching:
      rules:                      # first match wins; then e-mail domain
        - {domain: bigco.io, company: BigCo Holdings}
        - {email: cfo@smallco.com, company: SmallCo}
        - {client_id: 42, company: Forty Two Ltd}
    segments: {paid_list_id: 1001, overdue_list_id: 1002}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fbmkto_accounts.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def account(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "acme",
        "freshbooks_conn_id": "freshbooks_acme",
        "marketo_conn_id": "marketo_default",
        "schedule": "@daily",
        "start_date": "2025-01-01",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def errors_of(*accounts: dict[str, object], defaults: dict[str, object] | None = None) -> list[AccountConfigError]:
    data: dict[str, object] = {"accounts": list(accounts)}
    if defaults is not None:
        data["defaults"] = defaults
    return parse_config_collecting(data, source="fbmkto_accounts.yaml")[1]


def test_minimal_config_from_the_design(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    (acme,) = cfg.accounts
    assert acme.name == "acme"
    assert acme.dag_id == "fbmkto_sync__acme"
    assert (acme.freshbooks_conn_id, acme.marketo_conn_id) == ("freshbooks_acme", "marketo_default")
    assert acme.schedule == "@daily"
    assert acme.start_date == date(2025, 1, 1)
    assert acme.matching.rules == (
        Rule(company="BigCo Holdings", domain="bigco.io"),
        Rule(company="SmallCo", email="cfo@smallco.com"),
        Rule(company="Forty Two Ltd", client_id=42),
    )
    assert (acme.segments.paid_list_id, acme.segments.overdue_list_id) == (1001, 1002)
    # documented defaults
    assert acme.catchup is False
    assert acme.webhooks is False
    assert acme.timezone == "America/New_York"
    assert acme.tz.key == "America/New_York"
    assert acme.retries == 3
    assert acme.max_active_runs == 1
    assert acme.pool is None
    assert acme.staging_url is None
    assert acme.reconcile.fix_marketo is False
    assert acme.reconcile.bulk_threshold == 3000
    at = acme.activity_types
    assert (at.invoice_sent, at.payment_received, at.invoice_overdue) == (
        "fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue",
    )  # fmt: skip
    assert acme.matching.free_mail == FREE_MAIL_DOMAINS
    assert cfg.account("acme") is acme
    with pytest.raises(ConfigError, match=r"no account .nope..*acme"):
        cfg.account("nope")


def test_unquoted_yaml_date_and_all_optional_fields(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """\
            accounts:
              - name: acme_2
                freshbooks_conn_id: fb.acme-2
                marketo_conn_id: marketo_default
                schedule: "30 6 * * mon-fri"
                start_date: 2024-02-29
                catchup: true
                timezone: Europe/Berlin
                matching:
                  free_mail_domains: [Corp-Mail.example]
                activity_types: {invoice_sent: acmeSent}
                staging_url: s3://bucket/fbmkto
                webhooks: true
                reconcile: {fix_marketo: true, bulk_threshold: 500}
                pool: marketo_pool
                retries: 0
                max_active_runs: 2
            """,
        )
    )
    (a,) = cfg.accounts
    assert a.start_date == date(2024, 2, 29)
    assert a.catchup
    assert a.webhooks
    assert a.timezone == "Europe/Berlin"
    assert "corp-mail.example" in a.matching.free_mail
    assert "gmail.com" in a.matching.free_mail
    assert a.activity_types.invoice_sent == "acmeSent"
    assert a.activity_types.payment_received == "fbPaymentReceived"
    assert (a.staging_url, a.pool, a.retries, a.max_active_runs) == ("s3://bucket/fbmkto", "marketo_pool", 0, 2)
    assert a.reconcile.fix_marketo
    assert a.reconcile.bulk_threshold == 500


def test_defaults_are_merged_deeply_and_the_account_wins() -> None:
    data = {
        "defaults": {"marketo_conn_id": "mk", "retries": 5, "reconcile": {"fix_marketo": True, "bulk_threshold": 10}},
        "accounts": [
            account(marketo_conn_id=None),
            account(
                name="beta",
                freshbooks_conn_id="fb_beta",
                marketo_conn_id=None,
                retries=1,
                reconcile={"bulk_threshold": 99},
            ),
        ],
    }
    a, b = parse_config(data, source="f.yaml").accounts
    assert (a.marketo_conn_id, a.retries, a.reconcile.fix_marketo, a.reconcile.bulk_threshold) == ("mk", 5, True, 10)
    assert (b.marketo_conn_id, b.retries, b.reconcile.fix_marketo, b.reconcile.bulk_threshold) == ("mk", 1, True, 99)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"matching": {"rules": [{"domain": "a.io", "company": "A"}, {"email": "x@b.io", "domain": "b.io",
                                                                       "company": "B"}]}},
         "matching.rules[1]", "has both 'email' and 'domain'; give exactly one of client_id, email, domain"),
        ({"matching": {"rules": [{"company": "A"}]}}, "matching.rules[0]", "give exactly one of"),
        ({"matching": {"rules": [{"domain": "a.io"}]}}, "matching.rules[0].company", "missing"),
        ({"matching": {"rules": [{"domain": "https://a.io/", "company": "A"}]}}, "matching.rules[0].domain",
         "write e.g. 'a.io'"),
        ({"matching": {"rules": [{"domain": "gmail.com", "company": "A"}]}}, "matching.rules[0].domain", "free-mail"),
        ({"matching": {"rules": [{"email": "nope", "company": "A"}]}}, "matching.rules[0].email", "not an e-mail"),
        ({"matching": {"rules": [{"client_id": "42", "company": "A"}]}}, "matching.rules[0].client_id",
         "without quotes"),
        ({"matching": {"rules": [{"client_id": 1, "company": "?!"}]}}, "matching.rules[0].company",
         "no letters or digits"),
        ({"matching": {"rules": [{"domain": "a.io", "company": "A"}, {"domain": "A.io", "company": "B"}]}},
         "matching.rules[1]", "rules[0] already matches domain 'a.io'"),
        ({"matching": {"rules": [{"domain": "a.io", "company": "Big Co"}, {"client_id": 1, "company": "big co"}]}},
         "matching.rules[1].company", "spell it the same way"),
        ({"matching": {"rules": {"domain": "a.io"}}}, "matching.rules", "must be a list"),
        ({"name": "Acme Corp"}, "name", "e.g. 'acme_corp'"),
        ({"freshbooks_conn_id": "fb acme"}, "freshbooks_conn_id", "not a connection id"),
        ({"marketo_conn_id": None}, "marketo_conn_id", "missing"),
        ({"schedule": "0 25 * * *"}, "schedule", "hour '25' is not in 0-23"),
        ({"schedule": "0 6 * *"}, "schedule", "has 4 fields"),
        ({"schedule": "@once"}, "schedule", "no data interval"),
        ({"start_date": "2025-02-30"}, "start_date", "YYYY-MM-DD"),
        ({"start_date": "01/02/2025"}, "start_date", "YYYY-MM-DD"),
        ({"catchup": "yes please"}, "catchup", "true or false"),
        ({"timezone": "America/New_Yrok"}, "timezone", "did you mean 'America/New_York'"),
        ({"segments": {"paid_list_id": 5, "overdue_list_id": 5}}, "segments.overdue_list_id", "same list"),
        ({"segments": {"paid_list_id": 0}}, "segments.paid_list_id", "at least 1"),
        ({"segments": [1001]}, "segments", "must be a mapping"),
        ({"activity_types": {"invoice_sent": "fb Sent"}}, "activity_types.invoice_sent", "not a Marketo apiName"),
        ({"activity_types": {"invoice_sent": "fbPaymentReceived"}}, "activity_types.payment_received",
         "already used"),
        ({"staging_url": "staging/here"}, "staging_url", "absolute path or a URL"),
        ({"reconcile": {"bulk_threshold": 0}}, "reconcile.bulk_threshold", "at least 1"),
        ({"retries": -1}, "retries", "at least 0"),
        ({"max_active_runs": True}, "max_active_runs", "whole number"),
        ({"freshbooks_conn": "x"}, "freshbooks_conn", "did you mean 'freshbooks_conn_id'?"),
        ({"segments": {"paid_list": 1}}, "segments.paid_list", "did you mean 'paid_list_id'?"),
        ({"matching": {"rules": [{"domian": "a.io", "company": "A"}]}}, "matching.rules[0].domian",
         "did you mean 'domain'?"),
    ],
)  # fmt: skip
def test_each_error_names_file_account_field_and_fix(fields: dict[str, object], field: str, fragment: str) -> None:
    errors = errors_of(account(**fields))
    assert errors, "expected an error"
    hit = [e for e in errors if e.field == field]
    assert hit, [str(e) for e in errors]
    message = str(hit[0])
    assert message.startswith(f"fbmkto_accounts.yaml: account '{hit[0].account}': {field}: ")
    assert fragment in message
    assert isinstance(hit[0], ConfigError)


def test_rule_error_message_exactly() -> None:
    rules = [{"domain": "bigco.io", "company": "BigCo"}, {"email": "a@b.io", "domain": "b.io", "company": "B"}]
    (error,) = errors_of(account(matching={"rules": rules}))
    assert str(error) == (
        "fbmkto_accounts.yaml: account 'acme': matching.rules[1]: has both 'email' and 'domain'; "
        "give exactly one of client_id, email, domain"
    )


def test_all_problems_of_an_account_are_reported_at_once() -> None:
    errors = errors_of(account(schedule="nope", retries="3", timezone="Mars/Base"))
    assert sorted(str(e.field) for e in errors) == ["retries", "schedule", "timezone"]


def test_errors_from_defaults_say_so() -> None:
    (error,) = errors_of(account(), defaults={"retries": "many"})
    assert error.field == "retries"
    assert "comes from 'defaults'" in str(error)


def test_good_accounts_load_while_a_bad_one_reports(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        defaults: {marketo_conn_id: marketo_default, schedule: "@daily", start_date: "2025-01-01"}
        accounts:
          - {name: acme, freshbooks_conn_id: fb_acme}
          - {name: broken, freshbooks_conn_id: fb_broken, schedule: "every day"}
          - {name: beta, freshbooks_conn_id: fb_beta}
          - just a string
        """,
    )
    good, errors = load_config_collecting(path)
    assert [a.name for a in good] == ["acme", "beta"]
    assert [(e.account, e.field) for e in errors] == [("broken", "schedule"), ("accounts[3]", None)]
    assert all(str(e).startswith(str(path)) for e in errors)
    with pytest.raises(ConfigProblems) as raised:
        load_config(path)
    assert len(raised.value.errors) == 2
    assert "2 problems in" in str(raised.value)


def test_duplicate_names_refuse_every_occurrence() -> None:
    errors = errors_of(account(), account(freshbooks_conn_id="fb2"))
    assert [(e.account, e.field) for e in errors] == [("acme", "name"), ("acme", "name")]
    assert "fbmkto_sync__acme" in str(errors[0])


def test_shared_freshbooks_connection_is_refused_for_the_later_account() -> None:
    good, errors = parse_config_collecting(
        {"accounts": [account(), account(name="beta")]}, source="fbmkto_accounts.yaml"
    )
    assert [a.name for a in good] == ["acme"]
    (error,) = errors
    assert (error.account, error.field) == ("beta", "freshbooks_conn_id")
    assert "also used by account 'acme'" in str(error)


def _two(rule_a: dict[str, object], rule_b: dict[str, object]) -> tuple[list[str], list[AccountConfigError]]:
    data = {
        "accounts": [
            account(matching={"rules": [rule_a]}),
            account(name="beta", freshbooks_conn_id="fb_beta", matching={"rules": [{"client_id": 1, "company": "X"},
                                                                                    rule_b]}),
        ]
    }  # fmt: skip
    good, errors = parse_config_collecting(data, source="fbmkto_accounts.yaml")
    return [a.name for a in good], errors


def test_cross_account_company_conflict_is_refused() -> None:
    names, errors = _two({"domain": "bigco.io", "company": "BigCo Holdings"},
                         {"email": "cfo@bigco.io", "company": "bigco  holdings"})  # fmt: skip
    assert names == ["acme"]
    (error,) = errors
    assert (error.account, error.field) == ("beta", "matching.rules[1]")
    assert "'fbmkto:bigco-holdings' is also written by account 'acme'" in str(error)
    assert "shared: true" in str(error)


def test_cross_account_sharing_needs_both_sides() -> None:
    names, errors = _two({"domain": "bigco.io", "company": "BigCo", "shared": True},
                         {"domain": "bigco.io", "company": "BigCo"})  # fmt: skip
    assert names == ["acme"]
    assert len(errors) == 1
    names, errors = _two({"domain": "bigco.io", "company": "BigCo", "shared": True},
                         {"domain": "bigco.io", "company": "BigCo", "shared": True})  # fmt: skip
    assert names == ["acme", "beta"]
    assert errors == []
    cfg = parse_config(
        {"accounts": [account(matching={"rules": [{"domain": "bigco.io", "company": "BigCo", "shared": True}]}),
                      account(name="beta", freshbooks_conn_id="fb_beta",
                              matching={"rules": [{"domain": "bigco.io", "company": "BigCo", "shared": True}]})]},
        source="f.yaml",
    )  # fmt: skip
    assert cfg.shared_company_keys == {"bigco"}


def test_conflict_is_reported_even_when_the_earlier_account_has_other_problems() -> None:
    data = {
        "accounts": [
            account(schedule="bad", matching={"rules": [{"domain": "bigco.io", "company": "BigCo"}]}),
            account(name="beta", freshbooks_conn_id="fb_beta",
                    matching={"rules": [{"domain": "bigco.io", "company": "BigCo"}]}),
        ]
    }  # fmt: skip
    good, errors = parse_config_collecting(data, source="f.yaml")
    assert good == []
    assert [(e.account, e.field) for e in errors] == [("acme", "schedule"), ("beta", "matching.rules[0]")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("acounts: []\n", "did you mean 'accounts'?"),
        ("accounts: []\n", "non-empty list"),
        ("accounts:\n  - name: a\n    name: b\n", "line 3, column 5: duplicate key 'name'"),
        ("accounts: [\n", "YAML syntax error at line"),
        ("defaults: {nmae: x}\naccounts: [{name: a}]\n", "defaults.nmae: unknown key; did you mean 'name'?"),
        ("defaults: {name: x}\naccounts: [{name: a}]\n", "cannot be a default"),
        ("defaults: [1]\naccounts: [{name: a}]\n", "must be a mapping"),
    ],
    ids=["empty", "list", "typo", "no-accounts", "dup-key", "syntax", "defaults-typo", "defaults-name",
         "defaults-list"],
)  # fmt: skip
def test_file_level_errors_fail_everything(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AccountConfigError) as raised:
        load_config_collecting(path)
    assert str(raised.value).startswith(str(path))
    assert fragment in str(raised.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(AccountConfigError, match=r"file not found; create it .* FBMKTO_CONFIG"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        common: &common {marketo_conn_id: mk, schedule: "@daily", start_date: "2025-01-01"}
        accounts:
          - {<<: *common, name: acme, freshbooks_conn_id: fb_acme, schedule: "0 6 * * *"}
        """,
    )
    with pytest.raises(AccountConfigError, match="common: unknown top-level key"):
        load_config(path)  # anchors are fine, but only under known keys
    path.write_text(path.read_text().replace("common:", "defaults:"))
    (a,) = load_config(path).accounts
    assert a.schedule == "0 6 * * *"
    assert a.marketo_conn_id == "mk"


def test_config_path() -> None:
    assert config_path("/opt/airflow/dags", {}) == Path("/opt/airflow/dags/fbmkto_accounts.yaml")
    assert config_path("/opt/airflow/dags", {"FBMKTO_CONFIG": "/etc/fbmkto.yaml"}) == Path("/etc/fbmkto.yaml")


def test_errors_pickle() -> None:
    error = AccountConfigError("f.yaml", "acme", "retries", "must be a whole number")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.account, again.field) == (str(error), "acme", "retries")
    many = pickle.loads(pickle.dumps(ConfigProblems("f.yaml", [error, error])))
    assert len(many.errors) == 2


@pytest.mark.parametrize(
    "schedule",
    ["@daily", "@hourly", "@weekly", "@monthly", "@quarterly", "@yearly", "@DAILY", "0 6 * * *", "*/15 * * * *",
     "0 0 1 jan,jul *", "0 9-17/2 * * MON-FRI", "0 0 L * *", "0 0 ? * 5#2", "5 4 * * 0,7", "0 0 1/2 * *"],
)  # fmt: skip
def test_schedules_accepted(schedule: str) -> None:
    assert schedule_problem(schedule) is None


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("@once", "no data interval"),
        ("@continuous", "no data interval"),
        ("@dayly", "unknown preset"),
        ("0 6 * * * *", "has 6 fields"),
        ("60 * * * *", "minute '60' is not in 0-59"),
        ("* * 0 * *", "day of month '0' is not in 1-31"),
        ("* * * 13 *", "month '13' is not in 1-12 or jan-dec"),
        ("* * * foo *", "month 'foo'"),
        ("* * * * 8", "day of week '8' is not in 0-7 or sun-sat"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "not a number"),
        ("L * * * *", "minute"),
    ],
)
def test_schedules_refused(schedule: str, fragment: str) -> None:
    problem = schedule_problem(schedule)
    assert problem is not None
    assert fragment in problem

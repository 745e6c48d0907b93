"""``daily_budget_share`` and ``retry_skipped`` in the accounts config."""

from __future__ import annotations

import pytest

from airflow_provider_fbmkto.sync.config import parse_config, parse_config_collecting
from tests.sync.test_sync_config import account, errors_of


def test_defaults_no_share_and_five_automatic_retries() -> None:
    (acme,) = parse_config({"accounts": [account()]}, source="f.yaml").accounts
    assert (acme.daily_budget_share, acme.retry_skipped) == (None, 5)


def test_share_and_retries_are_read_per_account_and_from_defaults() -> None:
    data = {
        "defaults": {"daily_budget_share": 0.25},
        "accounts": [
            account(daily_budget_share=0.5, retry_skipped=30),
            account(name="globex", freshbooks_conn_id="freshbooks_globex"),
        ],
    }
    acme, globex = parse_config(data, source="f.yaml").accounts
    assert (acme.daily_budget_share, acme.retry_skipped) == (0.5, 30)
    assert (globex.daily_budget_share, globex.retry_skipped) == (0.25, 5)
    (whole,) = parse_config({"accounts": [account(daily_budget_share=1)]}, source="f.yaml").accounts
    assert whole.daily_budget_share == 1.0


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "half", True], ids=str)
def test_a_share_outside_0_to_1_is_refused_naming_the_field(bad: object) -> None:
    (error,) = errors_of(account(daily_budget_share=bad))
    text = str(error)
    assert "daily_budget_share" in text
    assert "must be a fraction above 0 and at most 1" in text


def test_negative_retry_skipped_is_refused() -> None:
    (error,) = errors_of(account(retry_skipped=-1))
    assert "retry_skipped" in str(error)
    assert "at least 0" in str(error)
    assert parse_config_collecting({"accounts": [account(retry_skipped=0)]}, source="f.yaml")[1] == []
